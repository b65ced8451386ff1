"""SSD's target assignment: TF's ArgMaxMatcher on IoU, then box codes and class targets for every anchor.

The rules, as ``object_detection/matchers/argmax_matcher.py`` with SSD's settings (matched and unmatched
thresholds both 0.5, ``force_match_for_each_row``):
1. every anchor takes the gt box it overlaps most (equal IoUs: the lowest gt index, ``argmax``'s first maximum);
2. an anchor whose best IoU is below the threshold is unmatched (-1);
3. then every gt box claims the anchor it overlaps most (equal IoUs: the lowest anchor index), even below the
   threshold, taking it from whichever gt had it. When several gt boxes claim the same anchor, the lowest gt
   index gets it (TF takes ``argmax`` over the rows of a one-hot matrix: the first), and the others claim nothing.
A gt box that overlaps no anchor at all claims anchor 0 (the argmax of a row of zeros), as TF does.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from mobilenet.detection.boxes import anchor_boxes, box_iou, check_boxes
from mobilenet.detection.coder import BOX_CODER_SCALES, encode

MATCH_THRESHOLD = 0.5
UNMATCHED = -1


def match(gt_boxes: Tensor, anchors: Tensor, threshold: float = MATCH_THRESHOLD) -> Tensor:
    """gt boxes [G, 4] (xyxy, normalized) against anchors [A, 4] (cy, cx, h, w) -> matched gt index [A], -1: none."""
    check_boxes(gt_boxes, "gt_boxes")
    check_boxes(anchors, "anchors")
    if gt_boxes.dim() != 2 or anchors.dim() != 2:
        raise ValueError(
            f"match takes gt_boxes [G, 4] and anchors [A, 4]; got {tuple(gt_boxes.shape)}, {tuple(anchors.shape)}"
        )
    num_anchors = len(anchors)
    if len(gt_boxes) == 0:
        return torch.full((num_anchors,), UNMATCHED, dtype=torch.long, device=anchors.device)
    iou = box_iou(gt_boxes.to(anchors.dtype), anchor_boxes(anchors))  # [G, A]
    matches = torch.where(iou.amax(dim=0) >= threshold, iou.argmax(dim=0), UNMATCHED)  # argmax: the first maximum
    forced_anchor = iou.argmax(dim=1)  # [G]
    claims = forced_anchor[:, None] == torch.arange(num_anchors, device=anchors.device)[None, :]  # [G, A]
    first_claimant = claims.to(torch.uint8).argmax(dim=0)  # argmax's first maximum: the lowest gt index
    return torch.where(claims.any(dim=0), first_claimant, matches)


def targets(
    gt_boxes: Tensor,
    gt_labels: Tensor,
    anchors: Tensor,
    num_classes: int,
    scales: Sequence[float] = BOX_CODER_SCALES,
    threshold: float = MATCH_THRESHOLD,
) -> tuple[Tensor, Tensor, Tensor]:
    """Training targets of one image -> (box codes [A, 4], class targets [A] (0: background), positive mask [A]).

    ``gt_labels`` are 0-based over the user's classes; ``num_classes`` counts the background column, so a label
    ``l`` becomes column ``l + 1``. Unmatched anchors get zero codes (TF's default, and the loss ignores them).
    """
    if gt_labels.shape != gt_boxes.shape[:1]:
        raise ValueError(
            f"gt_labels must be [G] for gt_boxes [G, 4]; got {tuple(gt_labels.shape)}, {tuple(gt_boxes.shape)}"
        )
    if len(gt_labels) and (gt_labels.min() < 0 or gt_labels.max() >= num_classes - 1):
        raise ValueError(
            f"gt_labels must lie in [0, {num_classes - 1}) (num_classes={num_classes} counts the background column); "
            f"got {gt_labels.min().item()}..{gt_labels.max().item()}"
        )
    matches = match(gt_boxes, anchors, threshold)
    positives = matches >= 0
    safe = matches.clamp(min=0)
    if len(gt_boxes):
        codes = encode(gt_boxes.to(anchors.dtype)[safe], anchors, scales)
        box_targets = torch.where(positives[:, None], codes, torch.zeros_like(codes))
        class_targets = torch.where(positives, gt_labels.long()[safe] + 1, 0)
    else:
        box_targets = anchors.new_zeros((len(anchors), 4))
        class_targets = torch.zeros(len(anchors), dtype=torch.long, device=anchors.device)
    return box_targets, class_targets, positives
