"""One builder for MobileNetV1 and V2, from the architecture tables in :mod:`mobilenet.nn.tables`."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from mobilenet.nn.blocks import InvertedResidual, depthwise_separable, link_expansion_shortcuts
from mobilenet.nn.config import ModelConfig
from mobilenet.nn.features import FeatureInfo, FeatureLocation, FeatureTap, run_layers
from mobilenet.nn.layers import ConvNormAct, make_divisible, start_rows_from
from mobilenet.nn.preprocessing import Preprocessing
from mobilenet.nn.tables import ARCHITECTURES, StageRow


@dataclass
class Plan:
    """The layers of ``features`` and the feature taps found while building them."""

    layers: list[nn.Module] = field(default_factory=list)
    bottleneck: list[FeatureTap] = field(default_factory=list)
    expansion: list[FeatureTap] = field(default_factory=list)

    def tap_output(self, channels: int, reduction: int, location: str = "bottleneck") -> None:
        """The output of the last layer so far is a feature map."""
        layer = len(self.layers) - 1
        self.bottleneck.append(FeatureTap(f"features.{layer}", channels, reduction, layer, location))  # type: ignore[arg-type]


def stage_rows(config: ModelConfig) -> tuple[StageRow, ...]:
    """The table's rows for ``config``: each stage's repeats times ``depth_mult``, rounded up, but the first and
    the last (timm's deeper variants keep them)."""
    rows = ARCHITECTURES[config.arch].rows
    if config.depth_mult == 1:
        return rows
    last = len(rows) - 1
    return tuple(
        row if i in (0, last) else replace(row, n=math.ceil(row.n * config.depth_mult)) for i, row in enumerate(rows)
    )


def stem_channels(config: ModelConfig) -> int:
    stem = ARCHITECTURES[config.arch].stem_channels
    return stem if config.fixed_stem_head else make_divisible(stem * config.width_mult, config.divisible_by)


def head_channels(config: ModelConfig) -> int | None:
    """The final 1x1 conv's width: V2's 1280, never scaled below (nor at all with ``fixed_stem_head``); V1's last
    width with ``head_conv``; None: no such conv."""
    arch = ARCHITECTURES[config.arch]
    head = arch.rows[-1].c if config.head_conv else arch.head_channels
    if head is None:
        return None
    # The V2 paper keeps the last conv at 1280 for alpha < 1 ("we apply width multiplier to all layers except the
    # very last convolutional layer"), which improves small models.
    return head if config.fixed_stem_head else make_divisible(head * max(1.0, config.width_mult))


def build_features(config: ModelConfig) -> Plan:
    """The stem, the blocks of the table's rows and (V2) the final 1x1 conv, with their taps."""
    arch, style, width = ARCHITECTURES[config.arch], config.style, config.width_mult
    plan = Plan()
    channels = stem_channels(config)
    # For small images (CIFAR's 32x32) the common adaptation keeps the resolution of the stem and of
    # the first strided stage, so the last stage is 4x4 rather than 1x1.
    reduction = 1 if config.small_input else 2
    plan.layers.append(ConvNormAct(config.in_chans, channels, 3, style, stride=reduction))
    dilation, keep_next_stride = 1, config.small_input
    for row in stage_rows(config):
        out_channels = make_divisible(row.c * width, config.divisible_by)
        for i in range(row.n):
            stride = row.s if i == 0 else 1
            block_dilation = dilation
            if stride > 1 and keep_next_stride:
                stride, keep_next_stride = 1, False
            boundary_reduction = reduction
            if stride > 1:
                # A stage boundary: the layer before it is a feature map at the current reduction.
                plan.tap_output(channels, reduction)
                if reduction >= config.output_stride:
                    dilation *= stride  # keep the resolution, grow the receptive field instead
                    stride = 1
                else:
                    reduction *= stride
            if arch.block == "inverted_residual":
                block = InvertedResidual(
                    channels, out_channels, stride, row.t, style, block_dilation,
                    config.linear_bottleneck, config.shortcut,
                )  # fmt: skip
            else:
                block = depthwise_separable(channels, out_channels, stride, style, block_dilation)
            if i == 0 and row.s > 1 and block.has_expansion and plan.bottleneck:
                # The expansion of a stride's first block, before its strided depthwise conv.
                layer = len(plan.layers)
                name = f"features.{layer}.conv.0"
                plan.expansion.append(FeatureTap(name, block.hidden_channels, boundary_reduction, layer, "expansion"))
            plan.layers.append(block)
            channels = out_channels
    if config.shortcut == "expansion":
        link_expansion_shortcuts(plan.layers)
    plan.tap_output(channels, reduction)
    if (head := head_channels(config)) is not None:
        plan.layers.append(ConvNormAct(channels, head, 1, style))
        plan.tap_output(head, reduction, "head")
        plan.expansion.append(plan.bottleneck[-1])
    return plan


def weight_count(config: ModelConfig) -> int:
    """The number of convolution and classifier weights ``config`` makes, counted from the table, not built."""
    width = config.width_mult
    channels = stem_channels(config)
    count = config.in_chans * channels * 9
    for row in stage_rows(config):
        out_channels = make_divisible(row.c * width, config.divisible_by)
        for _ in range(row.n):
            hidden = round(channels * row.t)
            count += (channels * hidden if hidden != channels else 0) + hidden * 9 + hidden * out_channels
            channels = out_channels
    if (head := head_channels(config)) is not None:
        count, channels = count + channels * head, head
    return count + channels * config.num_classes


def largest_activation(config: ModelConfig, resolution: int) -> int:
    """The elements of the largest activation the network computes for one ``resolution`` x ``resolution`` image,
    counted from the table: the widest expansion at the largest map (96 x 112 x 112 for V2 1.0 at 224)."""
    width = config.width_mult
    channels = stem_channels(config)
    side, stride = -(-resolution // 2), 2  # after the stem's stride 2
    largest = channels * side * side
    for row in stage_rows(config):
        hidden = round(channels * row.t)
        largest = max(largest, hidden * side * side)
        if stride * row.s <= config.output_stride:  # past it, dilation rather than stride
            side, stride = -(-side // row.s), stride * row.s
        channels = make_divisible(row.c * width, config.divisible_by)
    return max(largest, config.in_chans * resolution * resolution)


def memory_bytes() -> int:
    """This machine's memory (0 where the system does not say)."""
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 0


def check_batch_fits(config: Any, batch: int, resolution: int) -> None:
    """Refuse, before allocating anything, a batch whose input and largest activations (float32, two alive at once)
    would take more than half of this machine's memory. ``config``: a MobileNet's, or a head's on one (its backbone
    is what is counted; a model not built on one of the tables is not checked)."""
    if getattr(config, "arch", None) not in ARCHITECTURES:
        return
    backbone = ModelConfig(
        arch=config.arch, width_mult=config.width_mult, in_chans=config.in_chans,
        divisible_by=getattr(config, "divisible_by", 8), output_stride=getattr(config, "output_stride", 32),
    )  # fmt: skip
    needed = 4 * batch * (config.in_chans * resolution * resolution + 2 * largest_activation(backbone, resolution))
    memory = memory_bytes()
    if memory and needed > memory / 2:
        raise ValueError(
            f"{batch} image(s) of {resolution}x{resolution} need about {needed / 1e9:,.0f} GB to run through "
            f"{config.arch}, more than half of this machine's {memory / 1e9:.0f} GB: lower the batch or the resolution"
        )


def check_fits(config: ModelConfig) -> None:
    """Refuse, before allocating anything, a network whose weights alone would not fit in this machine's memory."""
    memory = memory_bytes()
    needed = weight_count(config) * 4  # float32
    if memory and needed > memory / 2:
        raise ValueError(
            f"width_mult {config.width_mult:g} makes {needed / 1e9:.0f} GB of weights, more than half of this "
            f"machine's {memory / 1e9:.0f} GB: the published widths are 0.25 to 1.4 (mobilenet_v2_100 is width 1.0)"
        )


class MobileNet(nn.Module):
    """MobileNetV1 or V2: ``features`` (stem, blocks, head conv), global average pool, ``classifier``.

    The state-dict keys of V2 are torchvision's (``features.0.0.weight`` ... ``classifier.1.weight``).
    """

    def __init__(self, config: ModelConfig | None = None, **overrides: Any) -> None:
        super().__init__()
        self.config = replace(config or ModelConfig(), **overrides)
        check_fits(self.config)
        plan = build_features(self.config)
        self.features = nn.Sequential(*plan.layers)
        self.taps = {"bottleneck": FeatureInfo(plan.bottleneck), "expansion": FeatureInfo(plan.expansion)}
        self.num_features = plan.bottleneck[-1].num_chs
        self.classifier = self.make_classifier(self.config.num_classes)
        self.init_weights()
        # What the weights expect and mean; set by loaders, saved with the weights.
        self.class_names: list[str] | None = None
        self.preprocessing = Preprocessing(input_size=self.config.input_size)

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    @property
    def feature_info(self) -> FeatureInfo:
        """The block-boundary taps (``feature_location="bottleneck"``)."""
        return self.taps["bottleneck"]

    def feature_taps(self, location: FeatureLocation = "bottleneck") -> FeatureInfo:
        """Every tap of one ``feature_location``: "bottleneck" or "expansion" (V2 only)."""
        if location not in self.taps:
            raise ValueError(f"feature_location must be 'bottleneck' or 'expansion', got {location!r}")
        if not self.taps[location]:
            raise ValueError(f"{self.config.arch}'s blocks expand nothing: use feature_location='bottleneck'")
        return self.taps[location]

    def make_classifier(self, num_classes: int) -> nn.Sequential:
        if num_classes == 0:
            return nn.Sequential()
        if self.config.classifier == "conv":
            # The paper's last row of Table 2: a 1x1 convolution on the pooled 1x1 map.
            layer: nn.Module = nn.Conv2d(self.num_features, num_classes, 1)
        else:
            layer = nn.Linear(self.num_features, num_classes)
        return nn.Sequential(nn.Dropout(self.config.dropout), layer)

    def init_weights(self) -> None:
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

    def reset_classifier(
        self, num_classes: int, dropout: float | None = None, rows_from: Sequence[Sequence[int]] | None = None
    ) -> None:
        """Replace the classifier with a freshly initialised one for ``num_classes`` (0: none); with ``rows_from``,
        new class ``i`` starts from the old classes ``rows_from[i]`` (see :func:`start_rows_from`)."""
        old = self.classifier[-1] if self.config.num_classes else None
        dropout = self.config.dropout if dropout is None else dropout
        self.config = replace(self.config, num_classes=num_classes, dropout=dropout)
        self.classifier = self.make_classifier(num_classes).train(self.training)  # an eval model's dropout stays off
        self.class_names = None
        for module in self.classifier.modules():
            if isinstance(module, nn.Linear | nn.Conv2d):
                nn.init.normal_(module.weight, 0, 0.01)
                nn.init.zeros_(module.bias)
        if rows_from is not None and old is not None and num_classes:
            start_rows_from(old, self.classifier[-1], rows_from)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The unpooled feature map of the last layer, (N, num_features, H/32, W/32)."""
        self.config.check_input(x)
        if self.config.shortcut == "expansion":
            return run_layers(self.features, x, carrying=True)[0]
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
