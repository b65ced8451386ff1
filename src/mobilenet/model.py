"""One builder for MobileNetV1 and V2, from the architecture tables in :mod:`mobilenet.arch`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import torch
from torch import nn

from mobilenet.arch import ARCHITECTURES, Architecture
from mobilenet.blocks import InvertedResidual, depthwise_separable
from mobilenet.layers import Activation, ConvNormAct, LayerStyle, Padding, make_divisible
from mobilenet.preprocess import Preprocessing

MIN_INPUT_SIZE = 32  # the network downsamples 32x: a smaller input leaves less than one pixel


@dataclass(frozen=True)
class ModelConfig:
    """Everything that decides a network's shape and behaviour; saved with its weights."""

    arch: str = "mobilenet_v2"
    width_mult: float = 1.0  # alpha: channels scaled and rounded to multiples of 8
    num_classes: int = 1000
    in_chans: int = 3
    input_size: int = 224  # the resolution it was made for (rho x 224); any size >= 32 runs
    classifier: Literal["linear", "conv"] = "linear"  # dropout + linear (torchvision) or a 1x1 conv
    dropout: float = 0.2
    activation: Activation = "relu6"
    linear_bottleneck: bool = True  # False: the paper's ablation with an activation on the projection
    shortcut: bool = True  # False: the paper's ablation without residual connections
    padding: Padding = "symmetric"  # "tf_same" for TensorFlow-trained weights
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1
    output_stride: int = 32  # 8 or 16 trade the last strides for dilation (segmentation, detection)
    small_input: bool = False  # stem and first strided stage at stride 1 (total stride 8): for 32x32 images

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"unknown arch {self.arch!r}: choose one of {sorted(ARCHITECTURES)}")
        if not (isinstance(self.width_mult, int | float) and math.isfinite(self.width_mult)) or (self.width_mult <= 0):
            raise ValueError(f"width_mult must be a number > 0 (0.35 to 1.4 are published), got {self.width_mult}")
        if self.output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {self.output_stride}")
        if self.input_size < self.min_input_size:
            raise ValueError(f"input_size must be at least {self.min_input_size}, got {self.input_size}")
        if self.num_classes < 0 or self.in_chans < 1:
            raise ValueError("num_classes must be >= 0 (0: no classifier) and in_chans >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.classifier not in ("linear", "conv"):
            raise ValueError(f"classifier must be 'linear' or 'conv', got {self.classifier!r}")

    @property
    def min_input_size(self) -> int:
        """The smallest input that still leaves one pixel at the network's last stage."""
        return MIN_INPUT_SIZE // 4 if self.small_input else MIN_INPUT_SIZE

    @property
    def style(self) -> LayerStyle:
        return LayerStyle(self.activation, self.padding, self.bn_eps, self.bn_momentum)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FeatureInfo:
    """A stage's output: the module that makes it, its channels and its reduction of the input."""

    module: str
    num_chs: int
    reduction: int


@dataclass
class _Plan:
    layers: list[nn.Module] = field(default_factory=list)
    feature_info: list[FeatureInfo] = field(default_factory=list)


def _build_features(config: ModelConfig, arch: Architecture) -> _Plan:
    style, width = config.style, config.width_mult
    plan = _Plan()
    channels = make_divisible(arch.stem_channels * width)
    # For small images (CIFAR's 32x32) the common adaptation keeps the resolution of the stem and of
    # the first strided stage, so the last stage is 4x4 rather than 1x1.
    reduction = 1 if config.small_input else 2
    plan.layers.append(ConvNormAct(config.in_chans, channels, 3, style, stride=reduction))
    dilation, keep_next_stride = 1, config.small_input
    for row in arch.rows:
        out_channels = make_divisible(row.c * width)
        for i in range(row.n):
            stride = row.s if i == 0 else 1
            block_dilation = dilation
            if stride > 1 and keep_next_stride:
                stride, keep_next_stride = 1, False
            if stride > 1:
                # A stage boundary: the layer before it is a feature map at the current reduction.
                plan.feature_info.append(FeatureInfo(f"features.{len(plan.layers) - 1}", channels, reduction))
                if reduction >= config.output_stride:
                    dilation *= stride  # keep the resolution, grow the receptive field instead
                    stride = 1
                else:
                    reduction *= stride
            if arch.block == "inverted_residual":
                block = InvertedResidual(
                    channels,
                    out_channels,
                    stride,
                    row.t,
                    style,
                    block_dilation,
                    config.linear_bottleneck,
                    config.shortcut,
                )
            else:
                block = depthwise_separable(channels, out_channels, stride, style, block_dilation)
            plan.layers.append(block)
            channels = out_channels
    if arch.head_channels is not None:
        # The V2 paper keeps the last conv at 1280 for alpha < 1 ("we apply width multiplier to all
        # layers except the very last convolutional layer"), which improves small models.
        head = make_divisible(arch.head_channels * max(1.0, width))
        plan.layers.append(ConvNormAct(channels, head, 1, style))
        channels = head
    plan.feature_info.append(FeatureInfo(f"features.{len(plan.layers) - 1}", channels, reduction))
    return plan


def check_input(x: torch.Tensor, config: ModelConfig) -> None:
    """Fail early, with the fix, on a batch the network cannot take."""
    if x.dim() != 4 or x.shape[1] != config.in_chans:
        raise ValueError(f"expected a batch of shape (N, {config.in_chans}, H, W), got {tuple(x.shape)}")
    if min(x.shape[-2:]) < config.min_input_size:
        size = config.min_input_size
        raise ValueError(
            f"input {x.shape[-2]}x{x.shape[-1]} is too small for {config.arch}: it downsamples {size}x, "
            f"so resize images to at least {size}x{size}"
        )


class MobileNet(nn.Module):
    """MobileNetV1 or V2: ``features`` (stem, blocks, head conv), global average pool, ``classifier``.

    The state-dict keys of V2 are torchvision's (``features.0.0.weight`` ... ``classifier.1.weight``).
    """

    def __init__(self, config: ModelConfig | None = None, **overrides: Any) -> None:
        super().__init__()
        self.config = replace(config or ModelConfig(), **overrides)
        plan = _build_features(self.config, ARCHITECTURES[self.config.arch])
        self.features = nn.Sequential(*plan.layers)
        self.feature_info = plan.feature_info
        self.num_features = plan.feature_info[-1].num_chs
        self.classifier = self._make_classifier(self.config.num_classes)
        self._init_weights()
        # What the weights expect and mean; set by loaders, saved with the weights.
        self.class_names: list[str] | None = None
        self.preprocessing = Preprocessing(input_size=self.config.input_size)

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def _make_classifier(self, num_classes: int) -> nn.Sequential:
        if num_classes == 0:
            return nn.Sequential()
        if self.config.classifier == "conv":
            # The paper's last row of Table 2: a 1x1 convolution on the pooled 1x1 map.
            layer: nn.Module = nn.Conv2d(self.num_features, num_classes, 1)
        else:
            layer = nn.Linear(self.num_features, num_classes)
        return nn.Sequential(nn.Dropout(self.config.dropout), layer)

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0, 0.01)
                nn.init.zeros_(module.bias)

    def reset_classifier(self, num_classes: int, dropout: float | None = None) -> None:
        """Replace the classifier with a freshly initialised one for ``num_classes`` (0: none)."""
        dropout = self.config.dropout if dropout is None else dropout
        self.config = replace(self.config, num_classes=num_classes, dropout=dropout)
        self.classifier = self._make_classifier(num_classes)
        self.class_names = None
        for module in self.classifier.modules():
            if isinstance(module, nn.Linear | nn.Conv2d):
                nn.init.normal_(module.weight, 0, 0.01)
                nn.init.zeros_(module.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The unpooled feature map of the last layer, (N, num_features, H/32, W/32)."""
        check_input(x, self.config)
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean((2, 3), keepdim=True)
        if pre_logits or self.config.num_classes == 0:
            return x.flatten(1)
        if self.config.classifier == "conv":
            return self.classifier(x).flatten(1)
        return self.classifier(x.flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class MobileNetFeatures(nn.Module):
    """The multi-stride feature maps of a MobileNet, for detection and segmentation heads.

    It keeps the network's ``features`` (so its state-dict keys, and checkpoints, stay the same) up to
    the deepest stage asked for, and returns one map per index of ``out_indices``.
    """

    def __init__(self, model: MobileNet, out_indices: Sequence[int] | None = None) -> None:
        super().__init__()
        all_info = model.feature_info
        indices = tuple(range(len(all_info))) if out_indices is None else tuple(out_indices)
        if not indices or any(not -len(all_info) <= i < len(all_info) for i in indices):
            raise ValueError(f"out_indices must pick from 0..{len(all_info) - 1}, got {out_indices}")
        indices = tuple(sorted({i % len(all_info) for i in indices}))
        self.config = model.config
        self.feature_info = [all_info[i] for i in indices]
        self._taps = [int(info.module.split(".")[1]) for info in self.feature_info]
        self.features = nn.Sequential(*list(model.features)[: self._taps[-1] + 1])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        check_input(x, self.config)
        outputs = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in self._taps:
                outputs.append(x)
        return outputs
