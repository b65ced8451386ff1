"""Box arithmetic on xyxy tensors: areas, IoU, anchors as corners, clipping, and exact greedy per-class NMS.

NMS follows TensorFlow's ``non_max_suppression`` kernel: a box is suppressed when its IoU with a kept box of its
class is *greater* than the threshold, equal scores go lower index first, and a box of zero area overlaps nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

NMS_CHUNK = 1024  # boxes compared at once: bounds the IoU matrix at 4 MiB whatever the number of candidates


def check_boxes(boxes: Tensor, name: str = "boxes") -> None:
    if boxes.dim() < 1 or boxes.shape[-1] != 4:
        raise ValueError(f"{name} must have a last dimension of 4 (x0, y0, x1, y1); got shape {tuple(boxes.shape)}")


def box_area(boxes: Tensor) -> Tensor:
    """Area of xyxy boxes [..., 4] -> [...]; boxes must have x0 <= x1 and y0 <= y1."""
    check_boxes(boxes)
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """IoU of every pair of xyxy boxes, a [N, 4] x b [M, 4] -> [N, M]; 0 where boxes do not intersect.

    Returning 0 (not 0/0) for no intersection is TF's IouSimilarity, and makes zero-area boxes overlap nothing.
    """
    check_boxes(a, "a")
    check_boxes(b, "b")
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    sides = (bottom_right - top_left).clamp(min=0)
    intersection = sides[..., 0] * sides[..., 1]
    union = box_area(a)[:, None] + box_area(b)[None, :] - intersection
    return torch.where(intersection > 0, intersection / union, torch.zeros_like(intersection))


def anchor_boxes(anchors: Tensor) -> Tensor:
    """Anchors [..., 4] in TF's (cy, cx, h, w) -> xyxy corners."""
    check_boxes(anchors, "anchors")
    cy, cx, h, w = anchors.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)


def clip_boxes(boxes: Tensor, width: float = 1.0, height: float = 1.0) -> Tensor:
    """xyxy boxes clamped to the window [0, width] x [0, height] (1 x 1: normalized coordinates)."""
    check_boxes(boxes)
    x = boxes[..., 0::2].clamp(0, width)
    y = boxes[..., 1::2].clamp(0, height)
    return torch.stack([x[..., 0], y[..., 0], x[..., 1], y[..., 1]], dim=-1)


def greedy_keep(boxes: Tensor, classes: Tensor, iou_threshold: float) -> Tensor:
    """Greedy NMS within boxes already in priority order -> keep mask [K] (bool).

    One IoU matrix, then a loop over just the rows that can suppress something: box j goes when a kept box
    i < j of its class overlaps it by more than the threshold.
    """
    overlaps = (box_iou(boxes, boxes) > iou_threshold) & (classes[:, None] == classes[None, :])
    overlaps = overlaps.triu(diagonal=1).cpu()  # the loop reads single entries: on the host, no device syncs
    keep = torch.ones(len(boxes), dtype=torch.bool)
    for i in overlaps.any(dim=1).nonzero().flatten().tolist():
        if keep[i]:
            keep &= ~overlaps[i]
    return keep.to(boxes.device)


def iter_nms_kept(
    boxes: Tensor, classes: Tensor, iou_threshold: float, chunk_size: int = NMS_CHUNK
) -> Iterator[Tensor]:
    """Exact greedy per-class NMS over boxes in priority order, yielding the kept indices chunk by chunk.

    A consumer that needs only the first kept boxes (the top detections) stops early; a chunk's boxes are first
    checked against every box kept before it, then against each other.
    """
    kept_boxes = boxes.new_zeros((0, 4))
    kept_classes = classes.new_zeros((0,))
    for start in range(0, len(boxes), chunk_size):
        chunk = torch.arange(start, min(start + chunk_size, len(boxes)), device=boxes.device)
        if len(kept_boxes):
            overlap = (box_iou(boxes[chunk], kept_boxes) > iou_threshold) & (
                classes[chunk, None] == kept_classes[None, :]
            )
            chunk = chunk[~overlap.any(dim=1)]
        kept = chunk[greedy_keep(boxes[chunk], classes[chunk], iou_threshold)]
        kept_boxes = torch.cat([kept_boxes, boxes[kept]])
        kept_classes = torch.cat([kept_classes, classes[kept]])
        yield kept


def batched_nms(boxes: Tensor, scores: Tensor, classes: Tensor, iou_threshold: float) -> Tensor:
    """Per-class NMS: boxes [K, 4] xyxy, scores [K], classes [K] -> kept indices [D], by score descending.

    Boxes of different classes never suppress each other. Equal scores keep the input order (a stable sort), so
    identical boxes with equal scores keep the first.
    """
    check_boxes(boxes)
    if boxes.dim() != 2 or scores.shape != boxes.shape[:1] or classes.shape != boxes.shape[:1]:
        raise ValueError(
            f"batched_nms takes boxes [K, 4], scores [K], classes [K]; got {tuple(boxes.shape)}, "
            f"{tuple(scores.shape)}, {tuple(classes.shape)}"
        )
    if torch.isnan(scores).any():
        raise ValueError("batched_nms: scores contain NaN; check the model's outputs")
    order = torch.sort(scores, descending=True, stable=True).indices
    kept = list(iter_nms_kept(boxes[order], classes[order], iou_threshold))
    return order[torch.cat(kept)] if kept else order
