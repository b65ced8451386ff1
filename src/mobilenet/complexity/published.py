"""Published figures to check our counts against: the TF-slim checkpoint tables."""

from __future__ import annotations

from dataclasses import dataclass


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
