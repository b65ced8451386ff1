"""The two MobileNet blocks: V2's inverted residual and V1's depthwise-separable convolution."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import nn

from mobilenet.nn.config import LayerStyle, Shortcut
from mobilenet.nn.layers import ConvNormAct, make_activation, make_conv, make_norm


class InvertedResidual(nn.Module):
    """MobileNetV2's bottleneck (Sandler et al. 2018, Table 1 and Figure 3d).

    1x1 expansion to ``in_channels * expand_ratio`` + activation (absent when the ratio is 1),
    3x3 depthwise + activation, then a *linear* 1x1 projection + norm. The shortcut is added only when
    the block keeps the shape: stride 1 and ``in_channels == out_channels``.

    ``linear_bottleneck=False`` puts the activation back on the projection, and ``shortcut`` moves the
    residual between expansions or drops it: the paper's two ablations (Figure 6). The submodule layout
    (``conv.0``, ``conv.1``, ...) is torchvision's, so its checkpoints load as they are.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        expand_ratio: float,
        style: LayerStyle,
        dilation: int = 1,
        linear_bottleneck: bool = True,
        shortcut: Shortcut = "bottleneck",
    ) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        hidden = round(in_channels * expand_ratio)
        layers: list[nn.Module] = []
        self.has_expansion, self.hidden_channels = hidden != in_channels, hidden
        if self.has_expansion:
            layers.append(ConvNormAct(in_channels, hidden, 1, style))
        layers += [
            ConvNormAct(hidden, hidden, 3, style, stride=stride, dilation=dilation, groups=hidden),
            make_conv(hidden, out_channels, 1),
            make_norm(out_channels, style),
        ]
        if not linear_bottleneck:
            layers.append(make_activation(style.activation))
        self.conv = nn.Sequential(*layers)
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.expand_ratio = expand_ratio
        self.keeps_shape = stride == 1 and in_channels == out_channels
        self.use_res_connect = shortcut == "bottleneck" and self.keeps_shape
        # Set by link_expansion_shortcuts: this block's depthwise output is added to the next block's expansion.
        self.passes_expansion = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.use_res_connect else out

    def forward_parts(
        self, x: torch.Tensor, carry: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The output, the expanded activation (a feature tap) and what goes on to the next block's expansion.

        ``carry`` is the previous block's depthwise output, added to this block's expansion (Figure 6b's
        shortcut between expansions); the output is :meth:`forward`'s.
        """
        expanded = self.conv[0](x) if self.has_expansion else x
        if carry is not None:
            expanded = expanded + carry
        filtered = self.conv[int(self.has_expansion)](expanded)
        out = filtered
        for layer in self.conv[int(self.has_expansion) + 1 :]:
            out = layer(out)
        return (x + out if self.use_res_connect else out), expanded, (filtered if self.passes_expansion else None)


def link_expansion_shortcuts(blocks: Sequence[nn.Module]) -> int:
    """Wire Figure 6b's "shortcut between expansions" through consecutive blocks; returns how many.

    Where the bottleneck shortcut would join a shape-keeping block's input and output, this one joins
    the wide tensors around that narrow bottleneck instead: the block's depthwise output goes on to the
    next block's expansion, whose width is the same. Same places, same count, no parameters.
    """
    linked = 0
    for block, following in itertools.pairwise(blocks):
        if not (isinstance(block, InvertedResidual) and isinstance(following, InvertedResidual)):
            continue
        block.passes_expansion = (
            block.keeps_shape and following.has_expansion and following.hidden_channels == block.hidden_channels
        )
        linked += block.passes_expansion
    return linked


def depthwise_separable(
    in_channels: int, out_channels: int, stride: int, style: LayerStyle, dilation: int = 1
) -> InvertedResidual:
    """MobileNetV1's block (Howard et al. 2017, Figure 3): 3x3 depthwise + BN + act, 1x1 + BN + act.

    It is exactly an inverted residual with no expansion, an activation on the projection and no
    shortcut, so it is built as one rather than written twice.
    """
    return InvertedResidual(
        in_channels, out_channels, stride, 1, style, dilation, linear_bottleneck=False, shortcut="none"
    )
