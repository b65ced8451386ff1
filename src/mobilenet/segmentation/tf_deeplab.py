"""tensorflow/models' DeepLab on MobileNetV2: its checkpoints and frozen graphs, read without TensorFlow.

DeepLab's published ``deeplabv3_mnv2_pascal_train_aug`` and ``..._dm05_...`` tarballs hold a checkpoint
(``model.ckpt-30000``) and a ``frozen_inference_graph.pb``. Both name the backbone as TF-slim's MobileNetV2
(``MobilenetV2/Conv``, ``expanded_conv[_k]/{expand,depthwise,project}``; no ``Conv_1``, DeepLab reads the last
bottleneck) and the head as ``image_pooling``, ``aspp0``, ``concat_projection`` (each a conv with a BatchNorm at eps
1e-5, the backbone's at 1e-3) and ``logits/semantic`` (a biased conv). The output stride is not a weight: a frozen
graph's dilations tell it (rate 4 at output stride 8, 2 at 16); a checkpoint is read at DeepLab's published 8.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from mobilenet.nn.preprocessing import TF_MEAN, TF_STD, Preprocessing
from mobilenet.segmentation.config import TF_HEAD_BN_EPS, DeepLabConfig
from mobilenet.segmentation.data import VOC_CLASSES
from mobilenet.segmentation.model import DeepLabV3, with_backbone
from mobilenet.weights.chain import from_tf_layout, load_chain
from mobilenet.weights.graphdef import mentions
from mobilenet.weights.tf_checkpoint import checkpoint_names, read_tf_checkpoint
from mobilenet.weights.tf_slim import BN_EPS, conv_norm, layer_scopes, read

BACKBONE = "MobilenetV2/"
# DeepLab's head scopes -> ours: the pooled branch, the 1x1 branch, the projection.
HEAD = {"image_pooling": "image_pooling", "aspp0": "branches.0", "concat_projection": "projection"}
LOGITS = "logits/semantic"
PUBLISHED_OUTPUT_STRIDE = 8  # DeepLab's MobileNetV2 models were trained and evaluated at 8
PUBLISHED_SIZE = 513  # and at 513x513 crops


def is_tf_deeplab(path: str | Path) -> bool:
    """Whether ``path`` is a DeepLab frozen graph or checkpoint (its prefix, ``.index`` or a data shard)."""
    path = Path(path)
    if path.suffix == ".pb":
        return mentions(path, f"{LOGITS}/")
    return any(name.startswith(f"{LOGITS}/") for name in checkpoint_names(path))


def import_tf_deeplab(path: str | Path) -> DeepLabV3:
    """The :class:`DeepLabV3` of a DeepLab checkpoint or frozen graph: its weights, conventions and output stride."""
    path = Path(path)
    settings: dict[str, Any] = {
        "output_stride": PUBLISHED_OUTPUT_STRIDE, "bn_eps": BN_EPS, "head": TF_HEAD_BN_EPS, "input_size": PUBLISHED_SIZE
    }  # fmt: skip
    if path.suffix == ".pb":
        from mobilenet.weights.graphdef import load_frozen_graph

        graph = load_frozen_graph(path)
        variables = graph.variables()
        settings |= graph_settings(graph, str(path))
    else:
        variables = read_tf_checkpoint(path)
    if any(name.startswith("aspp1") for name in variables):
        raise ValueError(f"{path} has DeepLab's separable atrous ASPP branches (aspp1...): only Mobile DeepLabv3's "
                         "ASPP-lite head (image pooling and a 1x1 branch) is read")  # fmt: skip
    if not any(name.startswith(BACKBONE) for name in variables):
        raise ValueError(f"{path} is a DeepLab file on another backbone than MobileNetV2 (no {BACKBONE} variables)")
    backbone = [conv_norm(variables, f"{BACKBONE}{scope}", str(path)) for scope in layer_scopes("mobilenet_v2")[:-1]]
    head = {ours: conv_norm(variables, scope, str(path)) for scope, ours in HEAD.items()}
    weights, biases = read(variables, f"{LOGITS}/weights"), read(variables, f"{LOGITS}/biases")
    if weights is None or biases is None:
        raise ValueError(f"{path} has no {LOGITS} weights and biases: it is no DeepLab model")
    base = DeepLabConfig(
        num_classes=len(biases), input_size=settings["input_size"], output_stride=settings["output_stride"],
        head_channels=len(head["projection"].weight), padding="tf_same", bn_eps=settings["bn_eps"],
        head_bn_eps=settings["head"],
    )  # fmt: skip
    shapes = [tuple(layer.weight.shape) for layer in backbone]
    config = with_backbone(base, shapes)
    if config is None:
        raise ValueError(f"{path}'s backbone of {len(shapes)} convolutions (first {shapes[0]}) matches no MobileNetV2")
    model = DeepLabV3(config)
    load_chain(model.backbone.features, backbone)
    for name, source in head.items():
        load_chain(model.get_submodule(name), [source])
    with torch.no_grad():
        model.logits.weight.copy_(torch.from_numpy(from_tf_layout(weights, depthwise=False)))
        model.logits.bias.copy_(torch.from_numpy(np.asarray(biases, dtype=np.float32)))
    model.preprocessing = Preprocessing(input_size=config.input_size, crop_pct=1.0, mean=TF_MEAN, std=TF_STD)
    model.class_names = list(VOC_CLASSES) if model.num_classes == len(VOC_CLASSES) else None
    return model.eval()


def graph_settings(graph: Any, source: str) -> dict[str, Any]:
    """What a frozen graph says beyond its weights: its input size where fixed, the backbone's and head's BatchNorm eps
    and the output stride (the largest dilation: TF runs a dilated depthwise conv between SpaceToBatchND and
    BatchToSpaceND)."""
    found: dict[str, Any] = {"input_size": graph.input_size() or PUBLISHED_SIZE}
    if len(backbone := graph.bn_epsilons(BACKBONE)) == 1:
        found["bn_eps"] = backbone.pop()
    if len(head := graph.bn_epsilons(tuple(HEAD))) == 1:
        found["head"] = head.pop()
    rates = [graph.constant_input(node, 1) for node in graph.nodes_of("SpaceToBatchND")]
    rates += [np.array(node.attrs.get("dilations", [1])) for node in graph.nodes_of("DepthwiseConv2dNative")]
    rate = max((int(np.max(r)) for r in rates if r is not None), default=1)
    if rate not in (2, 4):
        raise ValueError(f"{source} dilates its backbone by {rate}: DeepLab's output stride 8 (4) or 16 (2) only")
    found["output_stride"] = 32 // rate
    return found
