"""The MobileNetV2 paper's Tables 5 and 6 (SSD and SSDLite on COCO), counted on our detectors.

Counted as the classifiers are (convolution weights, per output pixel) at 320x320 for 80 classes (81 output
columns with the background). Table 5 counts the detection head alone (the extra layers and the prediction
layers: the whole detector less its backbone); Table 6 the whole detector. mAP is the paper's alone: the COCO
weights behind it are not public in a form that loads here (only their checkpoint index is).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from mobilenet.complexity.profile import module_cost
from mobilenet.complexity.tables import PaperTable, counted_table
from mobilenet.detection.config import SSDConfig
from mobilenet.detection.model import SSD

RESOLUTION = 320
COCO_COLUMNS = 81  # 80 classes and the background


@dataclass(frozen=True)
class DetectorCount:
    """One row: the paper's parameters and multiply-adds, and ours where ``count`` has filled them in."""

    label: str
    arch: str
    separable: bool
    head_only: bool  # Table 5 counts the head without its backbone
    paper_params_m: float
    paper_madds_b: float
    paper_map: float | None = None
    params_m: float | None = None
    madds_b: float | None = None


# Sandler et al. 2018 (arXiv 1801.04381): Table 5 (the head on MobileNetV2), Table 6 (the whole detector).
PAPER_TABLE5 = (
    DetectorCount("SSD head", "mobilenet_v2", False, True, 14.8, 1.25),
    DetectorCount("SSDLite head", "mobilenet_v2", True, True, 2.1, 0.35),
)
PAPER_TABLE6 = (
    DetectorCount("MNet V1 + SSDLite", "mobilenet_v1", True, False, 5.1, 1.3, 22.2),
    DetectorCount("MNet V2 + SSDLite", "mobilenet_v2", True, False, 4.3, 0.8, 22.1),
)


def count(row: DetectorCount) -> DetectorCount:
    """``row`` with our parameters and multiply-adds filled in."""
    model = SSD(SSDConfig(arch=row.arch, separable=row.separable, num_classes=COCO_COLUMNS, input_size=RESOLUTION))
    x = torch.zeros(1, 3, RESOLUTION, RESOLUTION)
    params, madds = module_cost(model, x)
    if row.head_only:
        backbone_params, backbone_madds = module_cost(model.backbone, x)
        params, madds = params - backbone_params, madds - backbone_madds
    return replace(row, params_m=params / 1e6, madds_b=madds / 1e9)


def detection_tables() -> list[DetectorCount]:
    """Tables 5 and 6 counted here, in the paper's order."""
    return [count(row) for row in (*PAPER_TABLE5, *PAPER_TABLE6)]


def paper_table(quick: bool = False) -> PaperTable:
    """Tables 5 and 6 beside ours (counted in seconds: ``quick`` changes nothing)."""
    rows = detection_tables()
    return counted_table(
        "Tables 5-6: SSDLite on COCO",
        "SSD / SSDLite at 320x320, 80 classes (Table 5: the head alone)",
        rows,
        ("paper mAP", "paper_map", "{:.1f}"),
        3,
        (
            "Counted on `mobilenet.detection.SSD` at 320x320 with 80 classes (81 output columns); Table 5's rows are "
            "the head alone (extra and prediction layers). Our SSDLite on MobileNetV2 maps one to one, shape for "
            "shape, onto the 404 weights of Google's `ssdlite_mobilenet_v2_coco` checkpoint (tested). Parameters "
            "agree to 0.05M, MAdds to 3% except the SSDLite head's, which the paper gives as 0.35B: twice what its "
            "layers compute (0.178B), as if multiplies and adds were counted apart there alone. mAP needs Google's "
            "COCO weights, of which only the checkpoint's index is reachable here; its TFLite SSD on MobileNetV1 runs "
            "in our code within 0.3 points of Google's runtime on COCO128 (BENCHMARKS.md)."
        ),
    )
