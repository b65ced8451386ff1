"""The MobileNetV2 paper's Table 7 (Mobile DeepLabv3 on PASCAL VOC 2012 val), counted on our models.

Parameters and multiply-adds are counted as the classifier's are (convolution and linear weights, per
output pixel) at 513x513 with 21 classes. Rows marked multi-scale ("MF": inputs scaled by 0.5 to 1.75 in
steps of 0.25, each also flipped, as DeepLab evaluates) count every pass: twice the sum over the six scales,
each scaled input being ``(513 - 1) * scale + 1`` pixels on a side, as DeepLab resizes. mIoU is the
paper's alone: it needs the paper's float weights and the full val set.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from mobilenet.complexity.profile import module_cost
from mobilenet.complexity.tables import PaperTable, counted_table
from mobilenet.segmentation.config import DeepLabConfig
from mobilenet.segmentation.model import DeepLabV3

EVAL_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)
CROP = 513


@dataclass(frozen=True)
class Table7Row:
    """One row of Table 7: the paper's figures, and ours where ``measure`` has counted them."""

    arch: str
    output_stride: int
    aspp: bool
    multi_scale: bool
    paper_miou: float
    paper_params_m: float
    paper_madds_b: float
    params_m: float | None = None
    madds_b: float | None = None

    @property
    def label(self) -> str:
        network = "MNet V1" if self.arch == "mobilenet_v1" else "MNet V2*"  # *: read at the second last feature map
        return f"{network} OS{self.output_stride}{' ASPP' if self.aspp else ''}{' MF' if self.multi_scale else ''}"


# Sandler et al. 2018 (arXiv 1801.04381), Table 7: the MobileNet rows (ResNet-101's are not a MobileNet).
PAPER_TABLE7 = (
    Table7Row("mobilenet_v1", 16, True, False, 75.29, 11.15, 14.25),
    Table7Row("mobilenet_v1", 8, True, True, 78.56, 11.15, 941.9),
    Table7Row("mobilenet_v2", 16, True, False, 75.70, 4.52, 5.8),
    Table7Row("mobilenet_v2", 8, True, True, 78.42, 4.52, 387.0),
    Table7Row("mobilenet_v2", 16, False, False, 75.32, 2.11, 2.75),
    Table7Row("mobilenet_v2", 8, False, True, 77.33, 2.11, 152.6),
)


def measure(row: Table7Row) -> Table7Row:
    """``row`` with our parameters and multiply-adds filled in."""
    model = DeepLabV3(DeepLabConfig(arch=row.arch, output_stride=row.output_stride, aspp=row.aspp))
    scales = EVAL_SCALES if row.multi_scale else (1.0,)
    passes = 2 if row.multi_scale else 1  # a flipped image costs what the image does
    madds = 0
    for scale in scales:
        side = int((CROP - 1) * scale) + 1
        params, cost = module_cost(model, torch.zeros(1, 3, side, side))
        madds += passes * cost
    return replace(row, params_m=params / 1e6, madds_b=madds / 1e9)


def table7(multi_scale: bool = True) -> list[Table7Row]:
    """Table 7's MobileNet rows counted here (``multi_scale=False``: the single-scale rows only, in seconds)."""
    return [measure(row) for row in PAPER_TABLE7 if multi_scale or not row.multi_scale]


def paper_table(quick: bool = False) -> PaperTable:
    """Table 7 beside ours (``quick``: without the multi-scale rows, which take a minute to count)."""
    rows = table7(multi_scale=not quick)
    return counted_table(
        "Table 7: Mobile DeepLabv3 on PASCAL VOC",
        "Mobile DeepLabv3 at 513x513, 21 classes (MF: 6 scales x flip, every pass counted)",
        rows,
        ("paper mIoU", "paper_miou", "{:.2f}%"),
        2,
        (
            "Counted on `mobilenet.segmentation.DeepLabV3` at 513x513 with 21 classes (MF rows: six scales from 0.5 to "
            "1.75, each also flipped, every pass counted). Parameters agree exactly. Without ASPP the MAdds agree to "
            "0.4%; with ASPP the paper counts 8-18% more than the weights do, an excess proportional to the ASPP "
            "input's channels (about five more 1x1 convolutions' worth), so the paper counted those branches in some "
            "other way. mIoU needs the paper's float weights and the full VOC val set, neither here: Google's 8-bit "
            "Coral file scores 72.56% with LiteRT and 72.58% in our model on 161 VOC val images (BENCHMARKS.md)."
            + (" `--quick`: single-scale rows only." if quick else "")
        ),
    )
