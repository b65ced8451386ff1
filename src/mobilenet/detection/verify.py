"""What an SSD file is, and whether our model detects what Google's runtime detects on it: LiteRT running the TFLite
file with its own post-processing op. Agreement is counted over detections (same class, IoU >= 0.5, each paired at
most once) at the score that ``mobilenet detect`` shows; each convention is flipped in turn as for a classifier
(:mod:`mobilenet.weights.verify`)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from mobilenet.data.images import image_batch
from mobilenet.detection.boxes import box_iou, clip_boxes
from mobilenet.detection.load import load_detector
from mobilenet.detection.model import SSD
from mobilenet.detection.predict import DEFAULT_SCORE, run_detector
from mobilenet.utils.modes import evaluating
from mobilenet.weights.frameworks import Runner, reference_for
from mobilenet.weights.verify import ImageFiles, Verification, beside

MATCH_IOU = 0.5
Found = list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]  # per image: boxes xyxy in [0, 1], scores, classes


def verify_detector(path: str | Path, images: ImageFiles = None, **overrides: Any) -> Verification:
    """Read an SSD file and run it beside LiteRT (a TFLite file; ours and frozen graphs: nothing to run it beside);
    ``overrides``: conventions to read it with instead of its own (``padding``, ``bn_eps``)."""
    path = Path(path)
    model = load_detector(path, **overrides).eval()
    config = model.config
    fmt = {".tflite": "tflite", ".pb": "graphdef"}.get(path.suffix, "mobilenet")
    found = Verification(
        str(path), fmt, config.arch, config.width_mult, config.input_size, config.num_classes, config.padding,
        config.bn_eps, False, asdict(model.preprocessing), model.class_names, None, measure="detections",
    )  # fmt: skip
    runner, found.reference, found.why_no_reference = reference_for(path, fmt, model, REFERENCES)
    if fmt == "graphdef":
        found.why_no_reference = "a frozen graph runs in TensorFlow: benchmarks/pedestrian_tf_reference.py runs it"
    return beside(model, found, runner, images, run=detections, agree=agreement)


def detections(model: SSD, pixels: torch.Tensor) -> Found:
    """Our detections above :data:`DEFAULT_SCORE`, boxes in [0, 1] of the input."""
    with evaluating(model), torch.no_grad():
        return run_detector(model, pixels, [(1, 1)] * len(pixels), DEFAULT_SCORE)


def agreement(mine: Found, theirs: Found) -> tuple[float, float | None]:
    """The share of detections that both sides have (twice the pairs over all detections: 1.0 when they are the
    same), and the largest difference of a paired box's corners, in fractions of the input."""
    pairs, total, largest = 0, 0, 0.0
    for (boxes, _, classes), (their_boxes, _, their_classes) in zip(mine, theirs, strict=True):
        total += len(boxes) + len(their_boxes)
        if not len(boxes) or not len(their_boxes):
            continue
        overlap = box_iou(boxes, their_boxes)
        overlap[classes[:, None] != their_classes[None, :]] = 0
        while overlap.max() >= MATCH_IOU:  # greedy: the best overlapping pair first
            i, j = divmod(int(overlap.argmax()), overlap.shape[1])
            largest = max(largest, float((boxes[i] - their_boxes[j]).abs().max()))
            overlap[i, :], overlap[:, j] = 0, 0
            pairs += 1
    return (1.0 if total == 0 else 2 * pairs / total), (largest if pairs else None)


def litert_runner(_module: Any, path: Path, model: SSD) -> Runner:
    """LiteRT on the file, fed our pixels as its input quantization says: its op's detections above the same score."""
    from mobilenet.detection.litert import LiteRTDetector

    detector = LiteRTDetector(path)

    def run(files: list[Path]) -> Found:
        found = []
        for boxes, scores, classes in detector(image_batch(files, model.preprocessing)).detections():
            keep = scores >= DEFAULT_SCORE
            found.append((clip_boxes(boxes[keep], 1.0, 1.0), scores[keep], classes[keep]))
        return found

    return run


REFERENCES = {"tflite": litert_runner}
