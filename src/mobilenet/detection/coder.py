"""TF's Faster R-CNN box coder: xyxy boxes <-> (ty, tx, th, tw) codes relative to (cy, cx, h, w) anchors.

ty = sy * (cy - cy_a) / h_a, tx = sx * (cx - cx_a) / w_a, th = sh * log(h / h_a), tw = sw * log(w / w_a), with
TF's small epsilon on every height and width when encoding (a zero-size box stays finite) and its clamp of the
log-sizes at 80 when decoding (exp stays finite), as ``object_detection/box_coders/faster_rcnn_box_coder.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from mobilenet.detection.boxes import check_boxes

BOX_CODER_SCALES = (10.0, 10.0, 5.0, 5.0)  # (y, x, height, width): TF's SSD configs
EPSILON = 1e-8
MAX_LOG_SIZE = 80.0  # exp(89) overflows float32


def check_scales(scales: Sequence[float]) -> None:
    if len(scales) != 4 or any(scale <= 0 for scale in scales):
        raise ValueError(f"box coder scales must be 4 positive numbers (y, x, h, w); got {tuple(scales)}")


def encode(boxes: Tensor, anchors: Tensor, scales: Sequence[float] = BOX_CODER_SCALES) -> Tensor:
    """xyxy boxes [..., 4] against (cy, cx, h, w) anchors [..., 4] (broadcast) -> codes (ty, tx, th, tw)."""
    check_boxes(boxes)
    check_boxes(anchors, "anchors")
    check_scales(scales)
    x0, y0, x1, y1 = boxes.unbind(-1)
    cy_a, cx_a, h_a, w_a = anchors.unbind(-1)
    h, w = y1 - y0, x1 - x0
    cy, cx = y0 + h / 2, x0 + w / 2  # TF's centre: min corner plus half the size
    h, w, h_a, w_a = h + EPSILON, w + EPSILON, h_a + EPSILON, w_a + EPSILON
    sy, sx, sh, sw = scales
    return torch.stack(
        [sy * (cy - cy_a) / h_a, sx * (cx - cx_a) / w_a, sh * torch.log(h / h_a), sw * torch.log(w / w_a)], dim=-1
    )


def decode(codes: Tensor, anchors: Tensor, scales: Sequence[float] = BOX_CODER_SCALES) -> Tensor:
    """Codes (ty, tx, th, tw) [..., 4] against (cy, cx, h, w) anchors [..., 4] (broadcast) -> xyxy boxes."""
    check_boxes(codes, "codes")
    check_boxes(anchors, "anchors")
    check_scales(scales)
    ty, tx, th, tw = codes.unbind(-1)
    cy_a, cx_a, h_a, w_a = anchors.unbind(-1)
    sy, sx, sh, sw = scales
    h = torch.exp((th / sh).clamp(max=MAX_LOG_SIZE)) * h_a
    w = torch.exp((tw / sw).clamp(max=MAX_LOG_SIZE)) * w_a
    cy = ty / sy * h_a + cy_a
    cx = tx / sx * w_a + cx_a
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)
