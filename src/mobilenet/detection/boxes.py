"""Box arithmetic on xyxy tensors: areas, IoU, anchors as corners, clipping, and exact greedy per-class NMS.

NMS follows TensorFlow's ``non_max_suppression`` kernel: a box is suppressed when its IoU with a kept box of its
class is *greater* than the threshold, equal scores go lower index first, and a box of zero area overlaps nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

NMS_CHUNK = 1024  # boxes compared at once: bounds the IoU matrix at 4 MiB whatever the number of candidates
FIRST_BLOCK = 256  # boxes taken first by score: 100 detections are mostly among them (larger: the IoU costs more)
CANDIDATES_PER_DETECTION = 4  # the first block's size for fewer detections: 64 for 10 is 1.3x faster than 256


def first_block(max_detections: int) -> int:
    """How many boxes to take first by score for ``max_detections``: a few per detection, at least 64, at most
    ``FIRST_BLOCK`` (the IoU matrix of the block grows as its square; a block too small needs another)."""
    return min(FIRST_BLOCK, max(64, CANDIDATES_PER_DETECTION * max_detections))


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
    (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = a.unbind(1), b.unbind(1)  # x and y apart: 2-D tensors, no 3-D ones
    width = (torch.minimum(ax1[:, None], bx1[None]) - torch.maximum(ax0[:, None], bx0[None])).clamp_(min=0)
    height = (torch.minimum(ay1[:, None], by1[None]) - torch.maximum(ay0[:, None], by0[None])).clamp_(min=0)
    intersection = width.mul_(height)
    union = box_area(a)[:, None] + box_area(b)[None, :] - intersection
    return torch.where(intersection > 0, intersection / union, torch.zeros((), dtype=intersection.dtype))


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
    """Greedy NMS within boxes already in priority order -> keep mask [K] (bool): box j goes when a kept box i < j of
    its class overlaps it by more than the threshold.

    One IoU matrix, then a loop over just the rows that can suppress something, on the host in NumPy (a step of it
    costs a microsecond, a PyTorch op several).
    """
    overlaps = (box_iou(boxes, boxes) > iou_threshold) & (classes[:, None] == classes[None, :])
    overlaps = overlaps.triu(diagonal=1).cpu().numpy()
    keep = np.ones(len(boxes), dtype=bool)
    for i in np.flatnonzero(overlaps.any(axis=1)):
        if keep[i]:
            keep &= ~overlaps[i]
    return torch.from_numpy(keep).to(boxes.device)


class GreedyNMS:
    """Exact greedy per-class NMS fed boxes in priority order, a block at a time: a block's boxes are first checked
    against every box kept before it, then against each other. A consumer that needs only the first kept boxes (the
    top detections) stops feeding it early."""

    def __init__(self, iou_threshold: float, device: torch.device | str = "cpu") -> None:
        self.iou_threshold = iou_threshold
        self.kept_boxes = torch.zeros((0, 4), device=device)
        self.kept_classes = torch.zeros((0,), dtype=torch.long, device=device)

    def add(self, boxes: Tensor, classes: Tensor) -> Tensor:
        """The next boxes [B, 4] and their classes [B], after all boxes added before -> the positions kept."""
        block = torch.arange(len(boxes), device=boxes.device)
        if len(self.kept_boxes):
            overlap = box_iou(boxes, self.kept_boxes.to(boxes.dtype)) > self.iou_threshold
            block = block[~(overlap & (classes[:, None] == self.kept_classes[None, :])).any(dim=1)]
        kept = block[greedy_keep(boxes[block], classes[block], self.iou_threshold)]
        self.kept_boxes = torch.cat([self.kept_boxes.to(boxes.dtype), boxes[kept]])
        self.kept_classes = torch.cat([self.kept_classes, classes[kept]])
        return kept


def ranked_blocks(scores: Tensor, candidates: Tensor, first: int = FIRST_BLOCK) -> Iterator[Tensor]:
    """The (anchor, class) pairs of ``scores`` [A, K] where ``candidates`` [A, K] holds, as class-major indices
    (``class * A + anchor``), best first (equal scores: lower index first, as a stable sort of all of them would
    give), in blocks of ``first``, then twice as many, and so on: the top of a long list without sorting all of it.

    A block holds every score equal to its last, so the order is exact across blocks. It is found among the anchors
    whose best score reaches the ``size``-th best anchor's: the ``size`` best pairs can lie nowhere else."""
    num_anchors = scores.shape[0]
    values = scores.masked_fill(~candidates, -torch.inf)  # pairs taken become -inf too
    left, size = int(candidates.sum()), first
    while left:
        best = values.max(dim=1).values
        rows = (best >= best.topk(min(size, num_anchors)).values[-1]).nonzero().flatten()
        rows = rows[best[rows] > -torch.inf]
        within = values[rows]
        kth = within.reshape(-1).topk(min(size, left)).values[-1]  # -inf: every pair left is within
        taken = ((within >= kth) & (within > -torch.inf)).nonzero()
        anchors, classes = rows[taken[:, 0]], taken[:, 1]
        block = (classes * num_anchors + anchors).sort().values
        ranked = torch.sort(scores[block % num_anchors, block // num_anchors], descending=True, stable=True)
        yield block[ranked.indices]
        values[anchors, classes] = -torch.inf
        left, size = left - len(block), min(2 * size, NMS_CHUNK)


def iter_nms_kept(
    boxes: Tensor, classes: Tensor, iou_threshold: float, chunk_size: int = NMS_CHUNK
) -> Iterator[Tensor]:
    """Exact greedy per-class NMS over boxes in priority order, yielding the kept indices chunk by chunk (see
    :class:`GreedyNMS`)."""
    nms = GreedyNMS(iou_threshold, boxes.device)
    for start in range(0, len(boxes), chunk_size):
        chunk = torch.arange(start, min(start + chunk_size, len(boxes)), device=boxes.device)
        yield chunk[nms.add(boxes[chunk], classes[chunk])]


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
