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
