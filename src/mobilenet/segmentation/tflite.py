"""Google's Mobile DeepLabv3 TFLite files (Coral's, float or quantized) imported into :class:`DeepLabV3`.

The generic TFLite reader gives the backbone's convolutions (those before the image pooling) and the
head's (those after it). The head is recognised by what each conv reads, not by tensor names: one conv
reads the pooled vector (image pooling), the others read feature maps (the 1x1 branch, any atrous
branches, the projection, the logits, in execution order). The backbone is matched by its chain of
weight shapes against our MobileNets at every published width, with either channel rounding.
The file's own output (an ArgMax at the input size) is not read: our model returns the logits.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import torch

from mobilenet.nn.variants import MODELS
from mobilenet.segmentation.config import DeepLabConfig
from mobilenet.segmentation.data import VOC_CLASSES
from mobilenet.segmentation.model import DeepLabV3
from mobilenet.weights.int8 import round_input, round_output
from mobilenet.weights.tflite import TF_BN_EPS, TFLiteClassifier, conv_shapes, load_folded, read_tflite, round_backbone


def match_deeplab(net: TFLiteClassifier, path: str | Path) -> DeepLabConfig:
    """The DeepLab config whose backbone and head have exactly the file's convolutions."""
    pooling = [conv for conv in net.after_pooling if conv.reads_pooled]
    dense = [conv for conv in net.after_pooling if not conv.reads_pooled]
    if len(pooling) != 1 or len(dense) not in (3, 6):
        raise ValueError(f"{path} is not a Mobile DeepLabv3 file: its head has {len(net.after_pooling)} convolutions")
    *branches, projection, logits = dense
    base = DeepLabConfig(
        num_classes=len(logits.weight), in_chans=net.in_chans, input_size=net.input_size,
        output_stride=math.prod(conv.stride for conv in net.convs), aspp=len(branches) == 4,
        head_channels=len(projection.weight), padding="tf_same", bn_eps=TF_BN_EPS,
    )  # fmt: skip
    shapes = [tuple(conv.weight.shape) for conv in net.convs]
    for model in MODELS.values():
        for divisible_by in (8, 1):
            config = replace(base, arch=model.arch, width_mult=model.width_mult, divisible_by=divisible_by)
            if conv_shapes(DeepLabV3(config).backbone) == shapes:
                return config
    raise ValueError(
        f"{path}'s backbone of {len(shapes)} convolutions (first {shapes[0]}, last {shapes[-1]}) "
        "matches no MobileNetV1/V2 of a published width"
    )


def import_deeplab_tflite(
    path: str | Path, net: TFLiteClassifier | None = None, emulate_int8: bool = False
) -> DeepLabV3:
    """A float :class:`DeepLabV3` with a TFLite file's weights (``net``: the file already read), its preprocessing
    and (21 classes) VOC's names. ``emulate_int8``: every activation rounded to the file's integer grid, so that
    the model computes what Google's runtime does (:mod:`mobilenet.weights.int8`)."""
    net = net or read_tflite(path)
    model = DeepLabV3(match_deeplab(net, path))
    pooling = [conv for conv in net.after_pooling if conv.reads_pooled]
    *branches, projection, logits = [conv for conv in net.after_pooling if not conv.reads_pooled]
    load_folded(model.backbone.features, net.convs)
    load_folded(model.image_pooling, pooling)
    load_folded(model.branches, branches)
    load_folded(model.projection, [projection])
    with torch.no_grad():
        model.logits.weight.copy_(torch.from_numpy(logits.weight))
        model.logits.bias.copy_(torch.from_numpy(logits.bias))
    if emulate_int8:
        round_backbone(model.backbone.features, net)
        round_input(model.image_pooling, net.grids.get("pooled"))
        round_output(model.image_pooling, pooling[0].output)
        for branch, source in zip(model.branches, branches, strict=True):
            round_output(branch, source.output)
        round_input(model.projection, net.grids.get("merged"))
        round_output(model.projection, projection.output)
        round_output(model.logits, logits.output)
        round_output(model, net.grids.get("resized"))  # the logits at the input's size, where the file's ArgMax reads
    model.preprocessing = replace(net.preprocessing, crop_pct=1.0)
    model.class_names = list(VOC_CLASSES) if model.num_classes == len(VOC_CLASSES) else None
    return model
