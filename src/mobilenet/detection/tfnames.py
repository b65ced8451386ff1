"""Our SSDLite's tensors under TensorFlow's names: Google's Object Detection API checkpoints and frozen graphs.

The names are those of ``ssdlite_mobilenet_v2_coco`` (``FeatureExtractor/MobilenetV2/...`` for the backbone and
the extra layers, ``BoxPredictor_{i}/...`` for the prediction layers). One map serves both the check that our
architecture is Google's, shape for shape, and loading a TF graph's constants into ours.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np
import torch
from torch import nn

from mobilenet.detection.model import SSD
from mobilenet.weights.chain import from_tf_layout
from mobilenet.weights.tf_slim import layer_scopes

SCOPE = "FeatureExtractor/MobilenetV2"
# Our BatchNorm's parameter and buffer names -> TF's.
NORM_NAMES = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}

Names = Iterator[tuple[str, str]]  # (TF name, our state-dict key)


def conv_names(tf_scope: str, key: str, conv: nn.Conv2d) -> Names:
    """A conv's weights (TF calls a depthwise conv's ``depthwise_weights``), and its bias if it has one."""
    depthwise = conv.groups > 1 and conv.groups == conv.in_channels
    yield f"{tf_scope}/{'depthwise_weights' if depthwise else 'weights'}", f"{key}.weight"
    if conv.bias is not None:
        yield f"{tf_scope}/biases", f"{key}.bias"


def norm_names(tf_scope: str, key: str) -> Names:
    for ours, theirs in NORM_NAMES.items():
        yield f"{tf_scope}/BatchNorm/{theirs}", f"{key}.{ours}"


def conv_norm(tf_scope: str, conv_key: str, norm_key: str, conv: nn.Conv2d) -> Names:
    yield from conv_names(tf_scope, conv_key, conv)
    yield from norm_names(tf_scope, norm_key)


def backbone_names(model: SSD) -> Names:
    """TF-slim's MobileNetV2 scopes (``Conv``, ``expanded_conv[_k]/{expand,depthwise,project}``, ``Conv_1``), each
    conv and the BatchNorm after it in order."""
    features = model.backbone.features
    convs = [(key, module) for key, module in features.named_modules() if isinstance(module, nn.Conv2d)]
    norms = [key for key, module in features.named_modules() if isinstance(module, nn.BatchNorm2d)]
    for scope, (conv_key, conv), norm_key in zip(layer_scopes("mobilenet_v2"), convs, norms, strict=True):
        yield from conv_norm(f"{SCOPE}/{scope}", f"backbone.features.{conv_key}", f"backbone.features.{norm_key}", conv)


def extra_names(model: SSD) -> Names:
    """``layer_19_1_Conv2d_{k}_1x1_{half}``, ``layer_19_2_Conv2d_{k}_3x3_s2_{depth}[_depthwise]``, k from 2."""
    for index, layer in enumerate(model.extras):
        k, key = index + 2, f"extras.{index}"
        half, depth = layer[0][0].out_channels, layer[-1][0].out_channels
        yield from conv_norm(f"{SCOPE}/layer_19_1_Conv2d_{k}_1x1_{half}", f"{key}.0.0", f"{key}.0.1", layer[0][0])
        strided = f"{SCOPE}/layer_19_2_Conv2d_{k}_3x3_s2_{depth}"
        if len(layer) == 3:  # separable: the depthwise half has its own scope
            yield from conv_norm(f"{strided}_depthwise", f"{key}.1.0", f"{key}.1.1", layer[1][0])
        yield from conv_norm(strided, f"{key}.{len(layer) - 1}.0", f"{key}.{len(layer) - 1}.1", layer[-1][0])


def head_names(model: SSD) -> Names:
    """``BoxPredictor_{i}/{BoxEncodingPredictor,ClassPredictor}[_depthwise]``."""
    for heads, name in ((model.box_heads, "BoxEncodingPredictor"), (model.class_heads, "ClassPredictor")):
        for index, head in enumerate(heads):
            scope, key = (
                f"BoxPredictor_{index}/{name}",
                f"{'box' if heads is model.box_heads else 'class'}_heads.{index}",
            )
            if len(head) == 2:  # separable: depthwise + BN + ReLU6, then the 1x1
                yield from conv_norm(f"{scope}_depthwise", f"{key}.0.0", f"{key}.0.1", head[0][0])
            yield from conv_names(scope, f"{key}.{len(head) - 1}", head[-1])


def tf_names(model: SSD) -> dict[str, str]:
    """Every TF variable name of ``model`` (an SSDLite on MobileNetV2) -> our state-dict key."""
    if model.config.arch != "mobilenet_v2" or not model.config.separable:
        raise ValueError("TensorFlow's names are mapped for SSDLite on MobileNetV2 (ssdlite_mobilenet_v2) only")
    return dict((*backbone_names(model), *extra_names(model), *head_names(model)))


def tf_to_torch(array: np.ndarray, depthwise: bool) -> torch.Tensor:
    """A TF variable in PyTorch's layout: conv HWIO -> OIHW, depthwise HWC1 -> C1HW; vectors as they are."""
    value = np.asarray(array, dtype=np.float32)
    return torch.from_numpy(from_tf_layout(value, depthwise) if value.ndim == 4 else value)


def load_tf_variables(model: SSD, variables: Mapping[str, np.ndarray], source: str) -> None:
    """Set every tensor of ``model`` from TF ``variables`` by name, checking each shape."""
    state = model.state_dict()
    names = tf_names(model)
    missing = [name for name in names if name not in variables]
    if missing:
        raise ValueError(f"{source} lacks {len(missing)} of SSDLite's {len(names)} tensors, e.g. {missing[0]}")
    loaded = {}
    for tf_name, key in names.items():
        value = tf_to_torch(variables[tf_name], tf_name.endswith("depthwise_weights"))
        if value.shape != state[key].shape:
            raise ValueError(
                f"{source}: {tf_name} is {tuple(value.shape)} in PyTorch's layout, but {key} is "
                f"{tuple(state[key].shape)}: the file holds another architecture or width"
            )
        loaded[key] = value
    model.load_state_dict(loaded, strict=False)
