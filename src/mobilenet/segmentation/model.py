"""Mobile DeepLabv3: the MobileNetV2 paper's segmentation model (Section 6.3, Table 7).

The backbone is a MobileNet at output stride 16 (or 8), read at its last bottleneck (320 channels for V2
1.0, no 1280 conv: the paper's "second last feature map"). The head is DeepLabv3's ASPP reduced as the
paper does ("ASPP-lite", TensorFlow's ``research/deeplab`` with MobileNetV2): image pooling (global average,
1x1 conv, BatchNorm, ReLU, broadcast back) beside a 1x1 conv branch, concatenated in that order, a 1x1
projection, dropout and 1x1 logits, upsampled bilinearly to the input with ``align_corners=True`` as TF
does. ``aspp=True`` adds the three 3x3 atrous branches (rates 6, 12, 18 at output stride 16).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mobilenet.nn.config import LayerStyle
from mobilenet.nn.features import MobileNetFeatures
from mobilenet.nn.layers import ConvNormAct, start_rows_from
from mobilenet.nn.model import MobileNet
from mobilenet.nn.preprocessing import TF_MEAN, TF_STD, Preprocessing
from mobilenet.nn.variants import MODELS
from mobilenet.segmentation.config import KIND, DeepLabConfig
from mobilenet.weights.chain import conv_shapes


def last_bottleneck(network: MobileNet) -> int:
    """The index of the network's last bottleneck tap: V2's 320 channels, before its 1280 conv (V1: the last block)."""
    taps = network.feature_taps("bottleneck")
    return max(i for i, tap in enumerate(taps) if tap.location == "bottleneck")


class DeepLabV3(nn.Module):
    """Mobile DeepLabv3 on a MobileNet backbone; returns class logits at the input's size.

    State-dict keys: ``backbone.features.*`` (a MobileNet's own, so classifier checkpoints load into it),
    then ``image_pooling``, ``branches`` (the 1x1 conv, then the atrous convs), ``projection``, ``logits``.
    """

    kind = KIND
    config_type = DeepLabConfig

    def __init__(self, config: DeepLabConfig | None = None, **overrides: Any) -> None:
        super().__init__()
        self.config = replace(config or DeepLabConfig(), **overrides)
        network = MobileNet(self.config.backbone())
        self.backbone = MobileNetFeatures(network, out_indices=(last_bottleneck(network),))
        channels, width = self.backbone.feature_info.channels(-1), self.config.head_channels
        head_eps = self.config.bn_eps if self.config.head_bn_eps is None else self.config.head_bn_eps
        style = LayerStyle("relu", self.config.padding, head_eps, self.config.bn_momentum)
        self.image_pooling = ConvNormAct(channels, width, 1, style)
        self.branches = nn.ModuleList(
            [ConvNormAct(channels, width, 1, style)]
            + [ConvNormAct(channels, width, 3, style, dilation=rate) for rate in self.config.atrous_rates]
        )
        self.projection = ConvNormAct(width * (1 + len(self.branches)), width, 1, style)
        self.dropout = nn.Dropout(self.config.dropout)
        self.class_names: list[str] | None = None
        self.reset_classifier(self.config.num_classes)
        # TensorFlow's [-1, 1] scaling, as Google's DeepLab weights take it; loaders replace it.
        self.preprocessing = Preprocessing(input_size=self.config.input_size, crop_pct=1.0, mean=TF_MEAN, std=TF_STD)

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def reset_classifier(self, num_classes: int, rows_from: Sequence[Sequence[int]] | None = None) -> None:
        """A new last layer for ``num_classes`` (fine-tuning to another label set); the rest keeps its weights. With
        ``rows_from``, new class ``i`` starts from the old classes ``rows_from[i]`` (see :func:`start_rows_from`)."""
        old = getattr(self, "logits", None)
        self.config = replace(self.config, num_classes=num_classes)
        self.logits = nn.Conv2d(self.config.head_channels, num_classes, 1)
        nn.init.normal_(self.logits.weight, std=0.01)
        nn.init.zeros_(self.logits.bias)
        if rows_from is not None and old is not None:
            start_rows_from(old, self.logits, rows_from)
        self.class_names = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (features,) = self.backbone(x)
        # The pooled branch is one vector per image: TF's bilinear resize of a 1x1 map is a broadcast.
        pooled = self.image_pooling(features.mean((2, 3), keepdim=True)).expand(-1, -1, *features.shape[-2:])
        merged = torch.cat([pooled, *(branch(features) for branch in self.branches)], dim=1)
        logits = self.logits(self.dropout(self.projection(merged)))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=True)


def with_backbone(base: DeepLabConfig, shapes: Sequence[tuple[int, ...]]) -> DeepLabConfig | None:
    """``base`` at the architecture and width (at any published width, with either channel rounding) whose backbone
    convolutions have exactly ``shapes``, in order; None where none has."""
    for model in MODELS.values():
        for divisible_by in (8, 1):
            config = replace(base, arch=model.arch, width_mult=model.width_mult, divisible_by=divisible_by)
            with torch.device("meta"):  # shapes only: nothing allocated or initialised
                candidate = DeepLabV3(config)
            if conv_shapes(candidate.backbone) == list(shapes):
                return config
    return None
