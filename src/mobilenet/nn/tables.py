"""The papers' architecture tables as data: typed, frozen rows, each table cited."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

BlockKind = Literal["inverted_residual", "depthwise_separable"]


@dataclass(frozen=True)
class StageRow:
    """One row of a MobileNet table: ``n`` blocks of expansion ``t`` with ``c`` output channels.

    The first block of the row has stride ``s``; the others have stride 1.
    """

    t: int
    c: int
    n: int
    s: int


@dataclass(frozen=True)
class Architecture:
    name: str
    block: BlockKind
    stem_channels: int  # the first, full 3x3 convolution, stride 2
    rows: tuple[StageRow, ...]
    head_channels: int | None  # a final 1x1 conv before pooling (V2), or none (V1)


# MobileNetV2, Sandler et al. 2018 (arXiv 1801.04381), Table 2: input 224^2 x 3, conv2d 32 stride 2,
# then these bottleneck rows, then conv2d 1x1 1280, avgpool 7x7, conv2d 1x1 k.
MOBILENET_V2 = Architecture(
    name="mobilenet_v2",
    block="inverted_residual",
    stem_channels=32,
    rows=(
        StageRow(t=1, c=16, n=1, s=1),
        StageRow(t=6, c=24, n=2, s=2),
        StageRow(t=6, c=32, n=3, s=2),
        StageRow(t=6, c=64, n=4, s=2),
        StageRow(t=6, c=96, n=3, s=1),
        StageRow(t=6, c=160, n=3, s=2),
        StageRow(t=6, c=320, n=1, s=1),
    ),
    head_channels=1280,
)

# MobileNetV1, Howard et al. 2017 (arXiv 1704.04861), Table 1: conv 32 stride 2, then 13
# depthwise-separable blocks (each a "Conv dw" + "Conv 1x1" pair of the table), avgpool 7x7, FC.
MOBILENET_V1 = Architecture(
    name="mobilenet_v1",
    block="depthwise_separable",
    stem_channels=32,
    rows=(
        StageRow(t=1, c=64, n=1, s=1),
        StageRow(t=1, c=128, n=1, s=2),
        StageRow(t=1, c=128, n=1, s=1),
        StageRow(t=1, c=256, n=1, s=2),
        StageRow(t=1, c=256, n=1, s=1),
        StageRow(t=1, c=512, n=1, s=2),
        StageRow(t=1, c=512, n=5, s=1),
        StageRow(t=1, c=1024, n=1, s=2),
        StageRow(t=1, c=1024, n=1, s=1),
    ),
    head_channels=None,
)

ARCHITECTURES = {arch.name: arch for arch in (MOBILENET_V2, MOBILENET_V1)}
