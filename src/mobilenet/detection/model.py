"""SSD and SSDLite on a MobileNet (the MobileNetV2 paper, Section 6.2, Tables 5 and 6).

SSDLite is SSD with every regular convolution of the prediction layers replaced by a depthwise-separable one:
the extra layers are a 1x1 conv to half the depth, a 3x3 depthwise conv of stride 2 and a 1x1 conv to the depth;
each prediction layer is a 3x3 depthwise conv (BatchNorm, ReLU6) then a 1x1 conv with a bias, one for the box
codes and one for the class logits (TF's ``ConvolutionalBoxPredictor`` with ``use_depthwise``). ``separable=False``
gives SSD's regular convolutions in both places.

State-dict keys: ``backbone.features.*`` (a MobileNet's own, so classifier checkpoints load into it), then
``extras.{i}`` (``0`` the 1x1 reduction, ``1`` the strided 3x3, ``2`` the 1x1 projection when separable), and
``box_heads.{i}`` / ``class_heads.{i}`` (``0`` the depthwise conv when separable, then ``1`` or ``0`` the 1x1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from mobilenet.detection.anchors import anchors_per_cell, grid_sizes, ssd_anchors
from mobilenet.detection.config import BACKBONE_LOCATIONS, KIND, SSDConfig
from mobilenet.nn.config import LayerStyle
from mobilenet.nn.features import MobileNetFeatures
from mobilenet.nn.layers import ConvNormAct, make_conv, start_rows_from
from mobilenet.nn.model import MobileNet
from mobilenet.nn.preprocessing import TF_MEAN, TF_STD, Preprocessing

BOX_CODE_SIZE = 4  # ty, tx, th, tw
CLASS_PRIOR = 0.01  # a new class layer's probability of each object (sigmoid(-4.6)); background: 1 - that


def extra_layer(in_channels: int, depth: int, config: SSDConfig, style: LayerStyle) -> nn.Sequential:
    """One extra layer: 1x1 to half the depth, then a stride-2 3x3 (depthwise + 1x1 when separable) to the depth."""
    half = config.depth(depth // 2)
    out = config.depth(depth)
    reduce = ConvNormAct(in_channels, half, 1, style)
    if config.separable:
        return nn.Sequential(
            reduce, ConvNormAct(half, half, 3, style, stride=2, groups=half), ConvNormAct(half, out, 1, style)
        )
    return nn.Sequential(reduce, ConvNormAct(half, out, 3, style, stride=2))


def prediction_layer(in_channels: int, outputs: int, config: SSDConfig, style: LayerStyle) -> nn.Sequential:
    """A box or class predictor: (3x3 depthwise + BN + ReLU6, then) a conv with a bias and no activation."""
    if config.separable:
        depthwise = ConvNormAct(in_channels, in_channels, config.predictor_kernel, style, groups=in_channels)
        return nn.Sequential(depthwise, nn.Conv2d(in_channels, outputs, 1))
    conv = make_conv(in_channels, outputs, config.predictor_kernel, padding=style.padding, bias=True)
    return nn.Sequential(conv)


class SSD(nn.Module):
    """SSD or SSDLite on a MobileNet: images in, ``(box_codes [N, A, 4], class_logits [N, A, num_classes])`` out.

    ``anchors(height, width)`` gives the [A, 4] anchors (cy, cx, h, w) the codes are relative to, in the same
    order; :mod:`mobilenet.detection.postprocess` turns both into boxes.
    """

    kind = KIND
    config_type = SSDConfig

    def __init__(self, config: SSDConfig | None = None, **overrides: Any) -> None:
        super().__init__()
        self.config = replace(config or SSDConfig(), **overrides)
        location = BACKBONE_LOCATIONS[self.config.arch]
        network = MobileNet(self.config.backbone())
        taps = [i for i, tap in enumerate(network.feature_taps(location)) if tap.reduction in self.config.tap_strides]
        self.backbone = MobileNetFeatures(network, taps, location)
        style = LayerStyle("relu6", self.config.padding, self.config.bn_eps, self.config.bn_momentum)
        channels = list(self.backbone.feature_info.channels())
        self.extras = nn.ModuleList()
        for depth in self.config.extra_depths:
            self.extras.append(extra_layer(channels[-1], depth, self.config, style))
            channels.append(self.config.depth(depth))
        counts = anchors_per_cell(self.config)
        self.box_heads = nn.ModuleList(
            prediction_layer(c, n * BOX_CODE_SIZE, self.config, style) for c, n in zip(channels, counts, strict=True)
        )
        self.class_heads = nn.ModuleList(
            prediction_layer(c, n * self.config.num_classes, self.config, style)
            for c, n in zip(channels, counts, strict=True)
        )
        self.init_heads()
        self.class_names: list[str] | None = None
        # TensorFlow's [-1, 1] scaling, as Google's detectors take it; loaders replace it.
        self.preprocessing = Preprocessing(input_size=self.config.input_size, crop_pct=1.0, mean=TF_MEAN, std=TF_STD)
        self.anchor_cache: dict[tuple[int, int], torch.Tensor] = {}

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def init_heads(self) -> None:
        """Small random predictors whose scores start at ``CLASS_PRIOR`` for every object and ``1 - CLASS_PRIOR`` for
        the background: a new head starts near "nothing here", so its first steps do not fight a loss of every
        anchor's background column."""
        for head in self.box_heads:
            nn.init.normal_(head[-1].weight, std=0.03)
            nn.init.zeros_(head[-1].bias)
        for head in self.class_heads:
            self.init_class_layer(head[-1])

    def init_class_layer(self, layer: nn.Conv2d) -> None:
        """One class predictor's last convolution at the prior: small weights, biases at the prior's logits."""
        prior_logit = math.log(CLASS_PRIOR / (1 - CLASS_PRIOR))
        nn.init.normal_(layer.weight, std=0.03)
        bias = layer.bias.detach().view(-1, self.num_classes)  # [anchors per cell, columns]
        bias.fill_(prior_logit)
        bias[:, 0] = -prior_logit

    def reset_classifier(self, num_classes: int, rows_from: Sequence[Sequence[int]] | None = None) -> None:
        """New class predictors for ``num_classes`` columns, the background's first (fine-tuning to another label set),
        each at the prior of :meth:`init_heads`; the rest keeps its weights. With ``rows_from``, new column ``i``
        starts from the old columns ``rows_from[i]`` (see :func:`start_rows_from`)."""
        self.config = replace(self.config, num_classes=num_classes)
        for head, count in zip(self.class_heads, anchors_per_cell(self.config), strict=True):
            old = head[-1]
            head[-1] = nn.Conv2d(old.in_channels, count * num_classes, old.kernel_size, padding=old.padding)
            self.init_class_layer(head[-1])
            if rows_from is not None:
                start_rows_from(old, head[-1], rows_from)
        self.class_names = None

    def anchors(self, height: int, width: int) -> torch.Tensor:
        """The anchors for an input of ``height`` x ``width``, computed once per size."""
        if (height, width) not in self.anchor_cache:
            self.anchor_cache[(height, width)] = ssd_anchors(self.config, grid_sizes(self.config, height, width))
        return self.anchor_cache[(height, width)]

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The maps the heads read: the backbone's taps, then each extra layer's output."""
        maps = self.backbone(x)
        for layer in self.extras:
            maps.append(layer(maps[-1]))
        return maps

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        maps = self.feature_maps(x)
        boxes = [flatten(head(m), BOX_CODE_SIZE) for head, m in zip(self.box_heads, maps, strict=True)]
        logits = [flatten(head(m), self.num_classes) for head, m in zip(self.class_heads, maps, strict=True)]
        return torch.cat(boxes, 1), torch.cat(logits, 1)


def flatten(prediction: torch.Tensor, size: int) -> torch.Tensor:
    """[N, A*size, H, W] -> [N, H*W*A, size]: cells row-major, then a cell's anchors, as the anchors are laid out."""
    return prediction.permute(0, 2, 3, 1).reshape(prediction.shape[0], -1, size)
