"""The papers' architecture tables as data, and the TF-slim figures that the tests check us against."""

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


@dataclass(frozen=True)
class PublishedCell:
    """One row of a TF-slim checkpoint table (figures as printed: millions, percent)."""

    arch: str
    width_mult: float
    resolution: int
    macs_m: float
    params_m: float
    top1: float
    top5: float


def _cells(arch: str, rows: str) -> tuple[PublishedCell, ...]:
    cells = []
    for line in rows.strip().splitlines():
        alpha, res, macs, params, top1, top5 = line.split()
        cells.append(PublishedCell(arch, float(alpha), int(res), float(macs), float(params), float(top1), float(top5)))
    return tuple(cells)


# tensorflow/models research/slim/nets/mobilenet/README.md, "Mobilenet V2 Imagenet Checkpoints":
# alpha, resolution, MACs (M), parameters (M), top-1, top-5.
PUBLISHED_V2 = _cells(
    "mobilenet_v2",
    """
    1.4 224 582 6.06 75.0 92.5
    1.3 224 509 5.34 74.4 92.1
    1.0 224 300 3.47 71.8 91.0
    1.0 192 221 3.47 70.7 90.1
    1.0 160 154 3.47 68.8 89.0
    1.0 128 99 3.47 65.3 86.9
    1.0 96 56 3.47 60.3 83.2
    0.75 224 209 2.61 69.8 89.6
    0.75 192 153 2.61 68.7 88.9
    0.75 160 107 2.61 66.4 87.3
    0.75 128 69 2.61 63.2 85.3
    0.75 96 39 2.61 58.8 81.6
    0.5 224 97 1.95 65.4 86.4
    0.5 192 71 1.95 63.9 85.4
    0.5 160 50 1.95 61.0 83.2
    0.5 128 32 1.95 57.7 80.8
    0.5 96 18 1.95 51.2 75.8
    0.35 224 59 1.66 60.3 82.9
    0.35 192 43 1.66 58.2 81.2
    0.35 160 30 1.66 55.7 79.1
    0.35 128 20 1.66 50.8 75.0
    0.35 96 11 1.66 45.5 70.4
    """,
)

# tensorflow/models research/slim/nets/mobilenet_v1.md, float checkpoints (2018_02_22).
PUBLISHED_V1 = _cells(
    "mobilenet_v1",
    """
    1.0 224 569 4.24 70.9 89.9
    1.0 192 418 4.24 70.0 89.2
    1.0 160 291 4.24 68.0 87.7
    1.0 128 186 4.24 65.2 85.8
    0.75 224 317 2.59 68.4 88.2
    0.75 192 233 2.59 67.2 87.3
    0.75 160 162 2.59 65.3 86.0
    0.75 128 104 2.59 62.1 83.9
    0.5 224 150 1.34 63.3 84.9
    0.5 192 110 1.34 61.7 83.6
    0.5 160 77 1.34 59.1 81.9
    0.5 128 49 1.34 56.3 79.4
    0.25 224 41 0.47 49.8 74.2
    0.25 192 34 0.47 47.7 72.3
    0.25 160 21 0.47 45.5 70.3
    0.25 128 14 0.47 41.5 66.3
    """,
)
