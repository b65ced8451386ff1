"""COCO's detection metrics, computed by pycocotools: mAP@[.5:.95], AP50, AP75 and per-class AP of detections; and the
record of an evaluation.

The ground truth is built in memory from the records (every box an annotation of its own area, none crowd) and the
detections likewise, as pycocotools' ``loadRes`` would make them from a results file; COCOeval does the rest. At most
``max_detections`` per image are scored, the highest-scoring ones, as COCO's challenge rules say (COCOeval itself
would cap them per image and class).
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mobilenet.detection.data import DetectionRecord
from mobilenet.utils.optional import require

# One image's detections: boxes xyxy in its pixels [D, 4], scores [D], labels [D] 0-based (arrays or tensors).
Detections = tuple[Any, Any, Any]


@dataclass
class DetectionEvaluation:
    """COCO scores on a set (fractions in [0, 1]; 0 where the ground truth holds no box at all)."""

    map: float  # AP averaged over IoU 0.50:0.05:0.95
    ap50: float
    ap75: float
    per_class: dict[str, float]  # AP@[.5:.95] of each class that the scored ground truth holds
    classes: list[str]
    # COCOeval's precision [IoU thresholds 10, recall points 101, classes, areas (all, S, M, L), max detections],
    # -1 where a class has no ground truth.
    precision: np.ndarray
    max_detections: int
    n: int  # images scored
    skipped: int  # images without detections (None): unreadable, left out with their ground truth
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)  # per class: images and boxes of the ground truth
    notes: list[str] = field(default_factory=list)  # what reading the data and matching its classes found

    @property
    def metrics(self) -> dict[str, float]:
        """The scores a training run records per epoch (as ``val_<name>``)."""
        return {"map": self.map, "ap50": self.ap50, "ap75": self.ap75}

    def to_json(self) -> str:
        """``map``, ``ap50``, ``ap75``, ``per_class``, ``n``, ``skipped`` and the ``notes`` on the data as JSON."""
        figures = {**self.metrics, "per_class": self.per_class, "n": self.n, "skipped": self.skipped}
        return json.dumps({**figures, "notes": self.notes}, indent=2)

    def report(self, source: str) -> str:
        lines = [
            f"{source}: mAP {self.map:.1%}, AP50 {self.ap50:.1%}, AP75 {self.ap75:.1%} on {self.n} images "
            f"(at most {self.max_detections} detections each, {self.skipped} unreadable skipped)",
            *(f"  {note}" for note in self.notes),
        ]
        for name in self.classes:
            ap = self.per_class.get(name)
            images, boxes = self.counts.get(name, (0, 0))
            lines.append(f"  {'    n/a' if ap is None else f'{ap:7.1%}'}  {name} ({images} images, {boxes} boxes)")
        return "\n".join(lines)

    def plot(self, path: str | Path, title: str = "") -> None:
        """Precision-recall curves at IoU 0.5, as PNG."""
        from mobilenet.detection.plots import plot_precision_recall

        plot_precision_recall(self, path, title)


def _quietly(call: Any) -> Any:
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress and its summary
        return call()


def _numpy(values: Any, dtype: type) -> np.ndarray:
    values = values.detach().cpu().numpy() if hasattr(values, "detach") else values
    return np.asarray(values, dtype=dtype)


def _annotation(image_id: int, box: np.ndarray, label: int, number: int, score: float | None = None) -> dict:
    width, height = float(box[2] - box[0]), float(box[3] - box[1])
    found = {"id": number, "image_id": image_id, "category_id": int(label) + 1, "iscrowd": 0}
    found |= {"bbox": [float(box[0]), float(box[1]), width, height], "area": width * height}
    return found if score is None else {**found, "score": float(score)}


def coco_evaluate(
    records: Sequence[DetectionRecord],
    classes: Sequence[str],
    detections: Sequence[Detections | None],
    max_detections: int = 100,
) -> DetectionEvaluation:
    """Score ``detections`` (one per record, ``None`` for an image that could not be read) against the records'
    boxes with COCOeval (bbox); stats at ``max_detections`` per image."""
    if len(detections) != len(records):
        raise ValueError(f"got detections for {len(detections)} images but {len(records)} records: give one per record")
    if max_detections < 1:
        raise ValueError(f"max_detections must be at least 1, got {max_detections}")
    images, truth, found = [], [], []
    for image_id, (record, detected) in enumerate(zip(records, detections, strict=True), start=1):
        if detected is None:
            continue
        images.append({"id": image_id, "width": record.width, "height": record.height})
        for box, label in zip(record.boxes, record.labels, strict=True):
            truth.append(_annotation(image_id, box, label, len(truth) + 1))
        boxes, scores, labels = (_numpy(values, np.float64) for values in detected)
        if boxes.ndim != 2 or boxes.shape[1:] != (4,) or not len(boxes) == len(scores) == len(labels):
            shapes = f"boxes {boxes.shape}, scores {scores.shape}, labels {labels.shape}"
            raise ValueError(f"detections of {record.image}: {shapes}: expected boxes [D, 4], scores [D], labels [D]")
        if len(labels) and not 0 <= labels.min() <= labels.max() < len(classes):
            raise ValueError(
                f"detections of {record.image}: labels beyond 0..{len(classes) - 1} (0-based, no background)"
            )
        for index in np.argsort(-scores, kind="stable")[:max_detections]:
            found.append(_annotation(image_id, boxes[index], labels[index], len(found) + 1, scores[index]))
    categories = [{"id": label + 1, "name": name} for label, name in enumerate(classes)]
    coco, cocoeval = require("pycocotools.coco", "detection"), require("pycocotools.cocoeval", "detection")
    ground_truth, results = coco.COCO(), coco.COCO()
    ground_truth.dataset = {"images": images, "annotations": truth, "categories": categories}
    results.dataset = {"images": images, "annotations": found, "categories": categories}
    _quietly(ground_truth.createIndex)
    _quietly(results.createIndex)
    evaluator = cocoeval.COCOeval(ground_truth, results, "bbox")
    evaluator.params.maxDets = [1, min(10, max_detections), max_detections]  # the stats are taken at the last
    _quietly(evaluator.evaluate)
    _quietly(evaluator.accumulate)
    _quietly(evaluator.summarize)
    precision = evaluator.eval["precision"]
    # COCOeval's summary takes mAP at 100 detections whatever maxDets says (-1 otherwise): taken here at the last.
    stats = [mean_precision(precision[..., 0, -1]), *(max(0.0, float(value)) for value in evaluator.stats[1:3])]
    per_class = {}
    for label, name in enumerate(classes):
        curve = precision[:, :, label, 0, -1]
        if (curve > -1).any():
            per_class[name] = float(curve[curve > -1].mean())
    counts = {name: (0, 0) for name in classes}
    for record in records:
        for label in set(record.labels.tolist()):
            images_with, boxes = counts[classes[label]]
            counts[classes[label]] = (images_with + 1, boxes + int((record.labels == label).sum()))
    return DetectionEvaluation(
        *stats, per_class, list(classes), precision, max_detections, n=len(images), skipped=len(records) - len(images),
        counts=counts,
    )  # fmt: skip


def mean_precision(precision: np.ndarray) -> float:
    """COCO's AP: the mean of the precision entries that exist (-1: a class without ground truth), 0 if none do."""
    present = precision[precision > -1]
    return float(present.mean()) if present.size else 0.0
