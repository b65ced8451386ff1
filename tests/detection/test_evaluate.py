"""COCO detection evaluation: perfect detections score 1, a hand-worked case its known AP, and a perturbed case the
value pycocotools gives through its own files (``COCO(file)``, ``loadRes``), independent of the in-memory build."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mobilenet.detection.data import DetectionRecord
from mobilenet.detection.metrics import coco_evaluate
from mobilenet.detection.plots import plot_precision_recall

CLASSES = ["cat", "dog", "bird"]
# Hand-written COCO files: boxes are COCO's [x, y, width, height]; category ids 1..3 are CLASSES' labels 0..2.
GROUND_TRUTH = {
    "images": [{"id": 1, "file_name": "a.jpg", "width": 640, "height": 480},
               {"id": 2, "file_name": "b.jpg", "width": 320, "height": 240}],
    "annotations": [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 100, 100], "area": 10000, "iscrowd": 0},
        {"id": 2, "image_id": 1, "category_id": 2, "bbox": [200, 200, 100, 120], "area": 12000, "iscrowd": 0},
        {"id": 3, "image_id": 1, "category_id": 1, "bbox": [400, 50, 60, 100], "area": 6000, "iscrowd": 0},
        {"id": 4, "image_id": 2, "category_id": 2, "bbox": [20, 30, 100, 170], "area": 17000, "iscrowd": 0},
        {"id": 5, "image_id": 2, "category_id": 1, "bbox": [150, 100, 50, 40], "area": 2000, "iscrowd": 0},
        {"id": 6, "image_id": 2, "category_id": 1, "bbox": [250, 20, 20, 20], "area": 400, "iscrowd": 0},
    ],
    "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}, {"id": 3, "name": "bird"}],
}  # fmt: skip
# Shifted boxes, a missed cat, false positives (one of a class absent from the ground truth), a wrong class.
RESULTS = [
    {"image_id": 1, "category_id": 1, "bbox": [12, 8, 96, 107], "score": 0.9},
    {"image_id": 1, "category_id": 2, "bbox": [210, 190, 95, 140], "score": 0.8},
    {"image_id": 1, "category_id": 1, "bbox": [400, 50, 60, 100], "score": 0.3},
    {"image_id": 1, "category_id": 3, "bbox": [500, 300, 100, 100], "score": 0.7},
    {"image_id": 1, "category_id": 2, "bbox": [0, 0, 50, 50], "score": 0.6},
    {"image_id": 2, "category_id": 2, "bbox": [25, 35, 85, 155], "score": 0.95},
    {"image_id": 2, "category_id": 1, "bbox": [140, 100, 60, 50], "score": 0.4},
    {"image_id": 2, "category_id": 1, "bbox": [10, 10, 10, 10], "score": 0.5},
    {"image_id": 2, "category_id": 2, "bbox": [252, 18, 20, 24], "score": 0.45},
]


def xyxy(box: list[float]) -> list[float]:
    x, y, width, height = box
    return [x, y, x + width, y + height]


def records() -> list[DetectionRecord]:
    found = []
    for image in GROUND_TRUTH["images"]:
        mine = [a for a in GROUND_TRUTH["annotations"] if a["image_id"] == image["id"]]
        boxes = np.array([xyxy(a["bbox"]) for a in mine], np.float32).reshape(-1, 4)
        labels = np.array([a["category_id"] - 1 for a in mine], np.int64)
        found.append(DetectionRecord(Path(image["file_name"]), image["width"], image["height"], boxes, labels))
    return found


def detections(results: list[dict]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    found = []
    for image in GROUND_TRUTH["images"]:
        mine = [r for r in results if r["image_id"] == image["id"]]
        boxes = np.array([xyxy(r["bbox"]) for r in mine], np.float64).reshape(-1, 4)
        found.append((boxes, np.array([r["score"] for r in mine]), np.array([r["category_id"] - 1 for r in mine])))
    return found


def pycocotools_stats(tmp_path: Path, results: list[dict], category: int | None = None) -> np.ndarray:
    """COCOeval's stats as its users get them: the ground truth and the results read from JSON files."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    (tmp_path / "gt.json").write_text(json.dumps(GROUND_TRUTH))
    (tmp_path / "results.json").write_text(json.dumps(results))
    with contextlib.redirect_stdout(io.StringIO()):
        ground_truth = COCO(str(tmp_path / "gt.json"))
        evaluator = COCOeval(ground_truth, ground_truth.loadRes(str(tmp_path / "results.json")), "bbox")
        if category is not None:
            evaluator.params.catIds = [category]
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats


def test_ground_truth_as_detections_scores_one() -> None:
    truth = records()
    perfect = [(r.boxes, np.ones(len(r.boxes)), r.labels) for r in truth]
    result = coco_evaluate(truth, CLASSES, perfect)
    assert result.metrics == pytest.approx({"map": 1.0, "ap50": 1.0, "ap75": 1.0})
    assert result.per_class == pytest.approx({"cat": 1.0, "dog": 1.0})  # no bird in the ground truth: left out
    assert (result.n, result.skipped) == (2, 0)


def test_a_hand_worked_case() -> None:
    # One cat, found once at IoU 0.62: a match at thresholds 0.50, 0.55 and 0.60 of the ten, so AP 0.3.
    record = DetectionRecord(Path("a.jpg"), 200, 200, np.array([[0, 0, 100, 100]], np.float32), np.array([0]))
    side = 100 * 0.62**0.5  # a box inside the cat, of 0.62 its area
    found = (torch.tensor([[0.0, 0.0, side, side]]), torch.tensor([0.8]), torch.tensor([0]))
    result = coco_evaluate([record], CLASSES, [found])
    assert result.metrics == pytest.approx({"map": 0.3, "ap50": 1.0, "ap75": 0.0})
    assert result.per_class == {"cat": pytest.approx(0.3)}


def test_a_perturbed_case_agrees_with_pycocotools_through_its_files(tmp_path: Path) -> None:
    result = coco_evaluate(records(), CLASSES, detections(RESULTS))
    stats = pycocotools_stats(tmp_path, RESULTS)
    assert 0.2 < stats[0] < 0.9  # neither perfect nor empty: the case tests something
    assert [result.map, result.ap50, result.ap75] == pytest.approx(stats[:3].tolist(), abs=1e-12)
    assert result.per_class.keys() == {"cat", "dog"}
    for label, name in enumerate(CLASSES[:2]):
        assert result.per_class[name] == pytest.approx(pycocotools_stats(tmp_path, RESULTS, label + 1)[0], abs=1e-12)
    assert result.precision.shape == (10, 101, 3, 4, 3)


def test_only_the_best_detections_per_image_count(tmp_path: Path) -> None:
    # At most 2 per image: the top two by score of each image, whatever their class.
    best = [r for image in (1, 2) for r in sorted(RESULTS, key=lambda r: -r["score"]) if r["image_id"] == image]
    kept = [r for image in (1, 2) for r in [r for r in best if r["image_id"] == image][:2]]
    result = coco_evaluate(records(), CLASSES, detections(RESULTS), max_detections=2)
    assert result.map == pytest.approx(coco_evaluate(records(), CLASSES, detections(kept), max_detections=2).map)
    assert result.map != pytest.approx(coco_evaluate(records(), CLASSES, detections(RESULTS)).map)


def test_unreadable_images_are_skipped_and_bad_detections_refused() -> None:
    truth, found = records(), detections(RESULTS)
    result = coco_evaluate(truth, CLASSES, [found[0], None])
    assert (result.n, result.skipped) == (1, 1)
    assert result.metrics == coco_evaluate(truth[:1], CLASSES, found[:1]).metrics
    with pytest.raises(ValueError, match="detections for 1 images but 2 records"):
        coco_evaluate(truth, CLASSES, found[:1])
    boxes, scores, labels = found[0]
    with pytest.raises(ValueError, match=r"labels beyond 0\.\.2"):
        coco_evaluate(truth, CLASSES, [(boxes, scores, labels + 3), found[1]])
    with pytest.raises(ValueError, match=r"expected boxes \[D, 4\]"):
        coco_evaluate(truth, CLASSES, [(boxes, scores[:-1], labels), found[1]])


def test_precision_recall_plot(tmp_path: Path) -> None:
    result = coco_evaluate(records(), CLASSES, detections(RESULTS))
    plot_precision_recall(result, tmp_path / "pr.png")
    assert (tmp_path / "pr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
