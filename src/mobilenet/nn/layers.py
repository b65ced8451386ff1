"""Building layers: channel rounding, TensorFlow "SAME" padding, conv + norm + activation, and a new last layer
started from an old one's rows."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mobilenet.nn.config import Activation, LayerStyle, Padding


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round ``value`` to the nearest multiple of ``divisor``, never below 90% of ``value``.

    This is the rounding of the TF-slim and torchvision reference implementations, so that a width
    multiplier gives the same channel counts (and so the same checkpoints) as theirs.
    """
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def make_activation(name: Activation) -> nn.Module:
    if name == "relu6":
        return nn.ReLU6(inplace=True)
    if name == "relu":
        return nn.ReLU(inplace=True)
    raise ValueError(f"unknown activation {name!r}: use 'relu6' or 'relu'")


def tf_same_pad(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding along one axis: (before, after); the odd pixel goes after."""
    effective_kernel = (kernel - 1) * dilation + 1
    total = max((math.ceil(size / stride) - 1) * stride + effective_kernel - size, 0)
    return total // 2, total - total // 2


class Conv2dSame(nn.Conv2d):
    """A Conv2d that pads like TensorFlow's "SAME", which depends on the input size when strided.

    Weights trained in TensorFlow expect this: a stride-2 convolution on an even input pads 0 pixels
    before and 1 after, where PyTorch's symmetric padding would pad 1 on both sides.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad_h = tf_same_pad(x.shape[-2], self.kernel_size[0], self.stride[0], self.dilation[0])
        pad_w = tf_same_pad(x.shape[-1], self.kernel_size[1], self.stride[1], self.dilation[1])
        if any(pad_h + pad_w):
            x = F.pad(x, (*pad_w, *pad_h))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def make_conv(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    stride: int = 1,
    dilation: int = 1,
    groups: int = 1,
    padding: Padding = "symmetric",
    bias: bool = False,
) -> nn.Conv2d:
    """A bias-free convolution (a norm follows) that keeps the spatial size at stride 1."""
    if padding not in ("symmetric", "tf_same"):
        raise ValueError(f"unknown padding {padding!r}: use 'symmetric' or 'tf_same'")
    # At stride 1 an odd kernel pads the same on both sides in either convention, so only strided
    # convolutions in TF mode need the input-dependent padding.
    conv_type = Conv2dSame if padding == "tf_same" and stride > 1 else nn.Conv2d
    static_pad = 0 if conv_type is Conv2dSame else (kernel_size - 1) // 2 * dilation
    return conv_type(in_channels, out_channels, kernel_size, stride, static_pad, dilation, groups, bias=bias)


class ConvNormAct(nn.Sequential):
    """Convolution, BatchNorm and (optionally) an activation, keyed ``0``, ``1``, ``2`` like torchvision."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        style: LayerStyle,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        act: bool = True,
    ) -> None:
        layers: list[nn.Module] = [
            make_conv(in_channels, out_channels, kernel_size, stride, dilation, groups, style.padding),
            make_norm(out_channels, style),
        ]
        if act:
            layers.append(make_activation(style.activation))
        super().__init__(*layers)
        self.out_channels = out_channels


def make_norm(channels: int, style: LayerStyle) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=style.bn_eps, momentum=style.bn_momentum)


def start_rows_from(old: nn.Linear | nn.Conv2d, new: nn.Linear | nn.Conv2d, rows_from: Sequence[Sequence[int]]) -> None:
    """Start each class of a new last layer from an old one's: class ``i`` takes the mean weight and bias of the old
    classes ``rows_from[i]`` (kept as initialised where there are none). A merged class's bias gains log(count): where
    its old classes score alike, it scores their summed probability. A layer may stack several predictors (SSD's, one
    per anchor of a cell), each a block of a row per class; every block is carried alike."""
    blocks = new.weight.shape[0] // len(rows_from)
    with torch.no_grad():
        old_rows = torch.cat([old.weight.flatten(1), old.bias[:, None]], 1).view(blocks, -1, new.weight[0].numel() + 1)
        new_weight, new_bias = new.weight.view(blocks, len(rows_from), -1), new.bias.view(blocks, -1)  # views: in place
        for row, sources in enumerate(rows_from):
            if sources:
                start = old_rows[:, list(sources)].mean(1)
                new_weight[:, row] = start[:, :-1]
                new_bias[:, row] = start[:, -1] + math.log(len(sources))
