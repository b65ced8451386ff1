"""From the model's raw outputs to detections: TF's ``multiclass_non_max_suppression`` as SSD's postprocess runs it.

Per image (``object_detection/core/post_processing.py``, ``meta_architectures/ssd_meta_arch.py``): decode the
boxes, sigmoid the logits and drop column 0 (background); per class, the anchors scoring above the threshold go
through NMS (suppressed at IoU > threshold, equal scores lower anchor first, at most ``max_per_class`` kept);
all classes' detections are merged by score (equal scores: lower class, then lower anchor), clipped to the image
(the unit square), those left with zero area dropped, and the first ``max_detections`` returned.

All classes are scanned at once in that merged order, so the scan stops as soon as ``max_detections`` are found:
a detection's fate depends only on higher-scoring boxes of its class, so this is exactly TF's result.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from mobilenet.detection.boxes import GreedyNMS, box_area, check_boxes, clip_boxes, first_block, ranked_blocks
from mobilenet.detection.coder import BOX_CODER_SCALES, decode

SCORE_THRESHOLD = 1e-8  # TF's ssdlite configs: every box the sigmoid does not round to 0
IOU_THRESHOLD = 0.6
MAX_DETECTIONS = 100

Detections = tuple[Tensor, Tensor, Tensor]  # boxes [D, 4] xyxy normalized, scores [D], labels [D] (0-based)


def detect_image(
    boxes: Tensor, scores: Tensor, score_threshold: float, iou_threshold: float, max_detections: int, max_per_class: int
) -> Detections:
    """One image: decoded boxes [A, 4] and class scores without background [A, K] -> detections."""
    num_anchors, num_classes = scores.shape
    nms, found, count = GreedyNMS(iou_threshold, boxes.device), [], 0
    per_class = torch.zeros(num_classes, dtype=torch.long, device=boxes.device)
    candidates = scores > score_threshold  # class-major below: equal scores, lower classes first
    for block in ranked_blocks(scores, candidates, first_block(max_detections)):
        classes = block // num_anchors
        kept = nms.add(boxes[block % num_anchors], classes)
        kept_classes = classes[kept]
        # TF's per-class NMS stops at max_per_class: a box's rank within its class, counting earlier blocks.
        rank = F.one_hot(kept_classes, num_classes).cumsum(dim=0).gather(1, kept_classes[:, None]).flatten()
        within_cap = per_class[kept_classes] + rank <= max_per_class
        per_class += torch.bincount(kept_classes, minlength=num_classes)
        kept = block[kept[within_cap]]
        kept = kept[box_area(clip_boxes(boxes[kept % num_anchors])) > 0]  # clipped to nothing: outside the image
        found.append(kept)
        count += len(kept)
        if count >= max_detections:
            break
    chosen = torch.cat(found)[:max_detections] if found else torch.zeros(0, dtype=torch.long, device=boxes.device)
    anchors, classes = chosen % num_anchors, chosen // num_anchors
    return clip_boxes(boxes[anchors]), scores[anchors, classes], classes


def fast_nms(
    box_codes: Tensor,
    class_logits: Tensor,
    anchors: Tensor,
    score_threshold: float,
    iou_threshold: float,
    max_detections: int,
    scales: Sequence[float] = BOX_CODER_SCALES,
) -> list[Detections]:
    """TF Lite's detection op without ``use_regular_nms``: each anchor keeps only its best class; those scoring at
    least the threshold are sorted by score (stable: equal scores keep anchor order) and go through one
    class-agnostic greedy NMS (suppressed at IoU *above* the threshold; a box of no area overlaps nothing) until
    ``max_detections`` are kept; boxes decoded and not clipped. Raw outputs -> per image (boxes [D, 4]
    xyxy normalized, scores [D], labels [D] 0-based), best first. box_codes [N, A, 4], class_logits [N, A, C]."""
    boxes = decode(box_codes, anchors.to(box_codes.dtype), scales)
    best, labels = torch.sigmoid(class_logits[..., 1:]).max(dim=-1)  # ties: the first (lowest) class, as the op
    found = []
    for image_boxes, image_best, image_labels in zip(boxes, best, labels, strict=True):
        nms, kept, count = GreedyNMS(iou_threshold, boxes.device), [], 0
        candidates = image_best[:, None] >= score_threshold
        for block in ranked_blocks(image_best[:, None], candidates, first_block(max_detections)):
            kept.append(block[nms.add(image_boxes[block], torch.zeros_like(block))])  # one class: agnostic
            count += len(kept[-1])
            if count >= max_detections:
                break
        chosen = torch.cat(kept)[:max_detections] if kept else torch.zeros(0, dtype=torch.long, device=boxes.device)
        found.append((image_boxes[chosen], image_best[chosen], image_labels[chosen]))
    return found


def postprocess(
    box_codes: Tensor,
    class_logits: Tensor,
    anchors: Tensor,
    score_threshold: float = SCORE_THRESHOLD,
    iou_threshold: float = IOU_THRESHOLD,
    max_detections: int = MAX_DETECTIONS,
    max_per_class: int = MAX_DETECTIONS,
    scales: Sequence[float] = BOX_CODER_SCALES,
    nms: str = "regular",
) -> list[Detections]:
    """Raw outputs -> per image (boxes [D, 4] xyxy normalized, scores [D], labels [D] 0-based), by score.

    box_codes [N, A, 4], class_logits [N, A, C] with background at column 0, anchors [A, 4] (cy, cx, h, w).
    ``nms="fast"``: TF Lite's class-agnostic :func:`fast_nms` (what Google's SSD .tflite files run) instead.
    """
    check_boxes(box_codes, "box_codes")
    check_boxes(anchors, "anchors")
    if box_codes.dim() != 3 or class_logits.dim() != 3 or class_logits.shape[:2] != box_codes.shape[:2]:
        raise ValueError(
            f"postprocess takes box_codes [N, A, 4] and class_logits [N, A, C]; "
            f"got {tuple(box_codes.shape)}, {tuple(class_logits.shape)}"
        )
    if anchors.shape != box_codes.shape[1:]:
        raise ValueError(
            f"anchors must be [A, 4] = {tuple(box_codes.shape[1:])} like box_codes; got {tuple(anchors.shape)}"
        )
    if class_logits.shape[-1] < 2:
        raise ValueError(
            f"class_logits needs the background column and at least one class; got {class_logits.shape[-1]}"
        )
    if max_detections < 1 or max_per_class < 1:
        raise ValueError(f"max_detections and max_per_class must be >= 1; got {max_detections}, {max_per_class}")
    if nms == "fast":
        return fast_nms(box_codes, class_logits, anchors, score_threshold, iou_threshold, max_detections, scales)
    if nms != "regular":
        raise ValueError(f"nms must be 'regular' (TF's per-class NMS) or 'fast' (TF Lite's), got {nms!r}")
    boxes = decode(box_codes, anchors.to(box_codes.dtype), scales)
    scores = torch.sigmoid(class_logits[..., 1:])
    return [
        detect_image(image_boxes, image_scores, score_threshold, iou_threshold, max_detections, max_per_class)
        for image_boxes, image_scores in zip(boxes, scores, strict=True)
    ]
