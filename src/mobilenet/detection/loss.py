"""SSD's training loss as TF's ssdlite_mobilenet_v2_coco config sets it.

Read from ``object_detection/core/losses.py`` and ``meta_architectures/ssd_meta_arch.py``:
- classification: sigmoid cross-entropy on all columns, background (column 0) included, one-hot targets, every
  anchor weighted 1, summed over the columns;
- localization: smooth L1 (Huber, delta 1) on the codes, summed over the 4 codes, positives only;
- hard example mining (HardExampleMiner, loss_type CLASSIFICATION): per image, anchors ranked by classification
  loss (equal losses: lower index first), NMS at IoU 0.99 over the decoded predicted boxes, at most 3000 kept;
  of those, every positive and the first ``max(min_negatives, floor(3 * positives kept))`` negatives count;
- both sums divided by the batch's number of matched anchors (all of them, mined or not; at least 1), weights 1:1.
The miner's NMS needs the anchors, to decode the boxes; without them it is skipped (at 0.99 it drops only
near-duplicate predictions, so the loss differs from TF's only where two predicted boxes nearly coincide).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from mobilenet.detection.boxes import iter_nms_kept
from mobilenet.detection.coder import BOX_CODER_SCALES, decode

LOSS_STATS = ("loss", "classification", "localization", "positives", "negatives")  # the entries of ssd_loss's stats
NUM_HARD_EXAMPLES = 3000
MINER_IOU_THRESHOLD = 0.99


def check_shapes(
    box_codes: Tensor, class_logits: Tensor, box_targets: Tensor, class_targets: Tensor, positives: Tensor
) -> None:
    n, a = box_codes.shape[:2]
    expected = {
        "box_codes": (box_codes, (n, a, 4)),
        "class_logits": (class_logits, (n, a, class_logits.shape[-1])),
        "box_targets": (box_targets, (n, a, 4)),
        "class_targets": (class_targets, (n, a)),
        "positives": (positives, (n, a)),
    }
    for name, (tensor, shape) in expected.items():
        if tuple(tensor.shape) != shape:
            raise ValueError(
                f"ssd_loss: {name} must be {shape} ([N, A, ...] like box_codes); got {tuple(tensor.shape)}"
            )


def nms_survivors(boxes: Tensor, order: Tensor, iou_threshold: float, limit: int) -> Tensor:
    """Per image, which ranks of ``order`` [N, A] survive NMS over ``boxes`` [N, A, 4] in that order -> [N, A] bool."""
    survivors = torch.zeros(order.shape, dtype=torch.bool, device=order.device)
    for image, (image_boxes, image_order) in enumerate(zip(boxes, order, strict=True)):
        one_class = torch.zeros(len(image_order), dtype=torch.long, device=boxes.device)
        count = 0
        for kept in iter_nms_kept(image_boxes[image_order], one_class, iou_threshold):
            survivors[image, kept] = True
            count += len(kept)
            if count >= limit:  # the rest could only be dropped by the cap
                break
    return survivors


def mine_hard_examples(
    cls_losses: Tensor,
    positives: Tensor,
    boxes: Tensor | None = None,
    negatives_per_positive: float = 3.0,
    min_negatives: int = 3,
    num_hard_examples: int = NUM_HARD_EXAMPLES,
    iou_threshold: float = MINER_IOU_THRESHOLD,
) -> Tensor:
    """TF's HardExampleMiner on anchorwise classification losses [N, A] -> the anchors that count [N, A] (bool)."""
    with torch.no_grad():
        order = torch.sort(cls_losses, dim=1, descending=True, stable=True).indices
        if boxes is None:
            eligible = torch.ones_like(positives)
        else:
            eligible = nms_survivors(boxes, order, iou_threshold, num_hard_examples)
        eligible &= eligible.cumsum(dim=1) <= num_hard_examples
        positive_sorted = positives.gather(1, order) & eligible
        negative_sorted = ~positives.gather(1, order) & eligible
        max_negatives = (negatives_per_positive * positive_sorted.sum(dim=1)).floor().long().clamp(min=min_negatives)
        take = positive_sorted | (negative_sorted & (negative_sorted.cumsum(dim=1) <= max_negatives[:, None]))
        return torch.zeros_like(take).scatter(1, order, take)


def ssd_loss(
    box_codes: Tensor,
    class_logits: Tensor,
    box_targets: Tensor,
    class_targets: Tensor,
    positives: Tensor,
    anchors: Tensor | None = None,
    negatives_per_positive: float = 3.0,
    min_negatives: int = 3,
    num_hard_examples: int = NUM_HARD_EXAMPLES,
    miner_iou_threshold: float = MINER_IOU_THRESHOLD,
    scales: Sequence[float] = BOX_CODER_SCALES,
) -> tuple[Tensor, Tensor]:
    """SSD loss of a batch -> (loss scalar, stats [5] detached: the sums named by ``LOSS_STATS``).

    box_codes [N, A, 4] and class_logits [N, A, C] are the model's outputs (C counts background at 0);
    box_targets [N, A, 4], class_targets [N, A] (long, 0: background) and positives [N, A] (bool) are
    ``matcher.targets`` stacked. Pass ``anchors`` [A, 4] for the miner's NMS (see the module docstring).
    """
    check_shapes(box_codes, class_logits, box_targets, class_targets, positives)
    positives = positives.bool()
    one_hot = F.one_hot(class_targets.long(), class_logits.shape[-1]).to(class_logits.dtype)
    cls_losses = F.binary_cross_entropy_with_logits(class_logits, one_hot, reduction="none").sum(dim=-1)
    loc_losses = F.huber_loss(box_codes, box_targets.to(box_codes.dtype), reduction="none", delta=1.0).sum(dim=-1)
    loc_losses = torch.where(positives, loc_losses, torch.zeros_like(loc_losses))
    decoded = None if anchors is None else decode(box_codes.detach(), anchors.to(box_codes.dtype), scales)
    selected = mine_hard_examples(
        cls_losses.detach(),
        positives,
        decoded,
        negatives_per_positive,
        min_negatives,
        num_hard_examples,
        miner_iou_threshold,
    )
    normalizer = positives.sum().clamp(min=1).to(cls_losses.dtype)
    classification = torch.where(selected, cls_losses, torch.zeros_like(cls_losses)).sum() / normalizer
    localization = torch.where(selected, loc_losses, torch.zeros_like(loc_losses)).sum() / normalizer
    loss = classification + localization
    negatives = (selected & ~positives).sum()
    stats = torch.stack([loss, classification, localization, positives.sum().to(loss.dtype), negatives.to(loss.dtype)])
    return loss, stats.detach()
