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
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from mobilenet.segmentation.config import DeepLabConfig
from mobilenet.segmentation.data import VOC_CLASSES
from mobilenet.segmentation.model import DeepLabV3, with_backbone
from mobilenet.weights.chain import load_folded
from mobilenet.weights.int8 import round_input, round_output
from mobilenet.weights.tflite import (
    TF_BN_EPS,
    TFLiteClassifier,
    TFLiteConv,
    TFLiteError,
    read_tflite,
    reads_tflite,
    round_backbone,
)


@dataclass(frozen=True)
class DeepLabHead:
    """A file's head convolutions by role: what each reads tells them apart, then execution order."""

    pooling: TFLiteConv  # reads the pooled vector
    branches: tuple[TFLiteConv, ...]  # the 1x1 conv, then any atrous convs
    projection: TFLiteConv
    logits: TFLiteConv


def deeplab_head(net: TFLiteClassifier, path: str | Path) -> DeepLabHead:
    """The head of a DeepLab file: one conv on the pooled vector, then 1 (or 4, with ASPP) branches, the
    projection and the logits on feature maps; anything else is not a Mobile DeepLabv3."""
    pooling = [conv for conv in net.after_pooling if conv.reads_pooled]
    dense = [conv for conv in net.after_pooling if not conv.reads_pooled]
    if len(pooling) != 1 or len(dense) not in (3, 6):
        raise TFLiteError(f"{path} is not a Mobile DeepLabv3 file: its head has {len(net.after_pooling)} convolutions")
    *branches, projection, logits = dense
    return DeepLabHead(pooling[0], tuple(branches), projection, logits)


def match_deeplab(net: TFLiteClassifier, head: DeepLabHead, path: str | Path) -> DeepLabConfig:
    """The DeepLab config whose backbone and head have exactly the file's convolutions."""
    base = DeepLabConfig(
        num_classes=len(head.logits.weight), in_chans=net.in_chans, input_size=net.input_size,
        output_stride=math.prod(conv.stride for conv in net.convs), aspp=len(head.branches) == 4,
        head_channels=len(head.projection.weight), padding="tf_same", bn_eps=TF_BN_EPS,
    )  # fmt: skip
    shapes = [tuple(conv.weight.shape) for conv in net.convs]
    if (config := with_backbone(base, shapes)) is not None:
        return config
    raise TFLiteError(
        f"{path}'s backbone of {len(shapes)} convolutions (first {shapes[0]}, last {shapes[-1]}) "
        "matches no MobileNetV1/V2 of a published width"
    )


@reads_tflite
def import_deeplab_tflite(
    path: str | Path, net: TFLiteClassifier | None = None, emulate_int8: bool = False
) -> DeepLabV3:
    """A float :class:`DeepLabV3` with a TFLite file's weights (``net``: the file already read), its preprocessing
    and (21 classes) VOC's names. ``emulate_int8``: every activation rounded to the file's integer grid, so that
    the model computes what Google's runtime does (:mod:`mobilenet.weights.int8`)."""
    net = net or read_tflite(path)
    head = deeplab_head(net, path)
    model = DeepLabV3(match_deeplab(net, head, path))
    load_folded(model.backbone.features, net.convs)
    load_folded(model.image_pooling, [head.pooling])
    load_folded(model.branches, head.branches)
    load_folded(model.projection, [head.projection])
    with torch.no_grad():
        model.logits.weight.copy_(torch.from_numpy(head.logits.weight))
        model.logits.bias.copy_(torch.from_numpy(head.logits.bias))
    if emulate_int8:
        round_backbone(model.backbone.features, net)
        round_input(model.image_pooling, net.grids.get("pooled"))
        round_output(model.image_pooling, head.pooling.output)
        for branch, source in zip(model.branches, head.branches, strict=True):
            round_output(branch, source.output)
        round_input(model.projection, net.grids.get("merged"))
        round_output(model.projection, head.projection.output)
        round_output(model.logits, head.logits.output)
        round_output(model, net.grids.get("resized"))  # the logits at the input's size, where the file's ArgMax reads
    model.preprocessing = replace(net.preprocessing, crop_pct=1.0)
    model.class_names = list(VOC_CLASSES) if model.num_classes == len(VOC_CLASSES) else None
    return model
