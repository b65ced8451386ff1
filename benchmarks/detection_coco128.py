"""Google's quantized COCO SSD (TF Lite's ``detect.tflite``) on COCO128 val: LiteRT against our import of it.

    python benchmarks/detection_coco128.py [--threads 2] [--limit 128]

Every image is resized whole to 300x300 (bilinear, as the file was trained) and scored by
``mobilenet.detection.evaluate.coco_evaluate`` (pycocotools) against ``instances_val2017_from_yolo.json`` at
most 10 detections per image, the file's own limit. The file's classes (COCO's 90 ids, ``???`` for the unused
ones) are mapped by name to the JSON's 80 categories. Boxes are scored as they come (not clipped), as LiteRT's.

LiteRT runs the file as shipped, its ``TFLite_Detection_PostProcess`` op included: ../shared/README.md measured
mAP 0.221, AP50 0.351. Ours is the same weights imported into our SSD, in float or with every activation rounded
to the file's grid (``emulate_int8``), followed by the op's own NMS (``fast_nms``: class-agnostic, over each
anchor's best class) against our exact anchors or the file's uint8 ones, and, for comparison, TF's regular
per-class NMS (``postprocess``), which the file does not use.

The round trip: the imported float model exported again as a full-integer TFLite file by ``export_tflite_int8``
(calibrated on ``--calibration`` COCO128 train images, its own ``TFLite_Detection_PostProcess`` op at the end), run
in LiteRT and read back by our importer (int8-emulated).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from machine import HelpFormatter, cpu_name  # benchmarks/machine.py, beside this script

from mobilenet.data.images import as_rgb_image, to_tensor
from mobilenet.detection.data import DetectionSet, coco_detection
from mobilenet.detection.litert import Detections, LiteRTDetector
from mobilenet.detection.metrics import DetectionEvaluation, coco_evaluate
from mobilenet.detection.postprocess import fast_nms, postprocess
from mobilenet.detection.predict import resize_to_input
from mobilenet.detection.tflite import import_ssd_tflite, read_ssd_tflite
from mobilenet.inference.edge import export_tflite_int8

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
WEIGHTS = "weights/ssd_mobilenet_v1_075_coco_quant.tflite"
README = {"map": 0.221, "ap50": 0.351}  # LiteRT, ../shared/README.md
MAX_DETECTIONS = 10
CHUNK = 16  # images per forward pass of ours

Predictor = Callable[[torch.Tensor], list[Detections]]  # a preprocessed batch -> per image normalized detections


def our_predictor(path: Path, emulate_int8: bool, nms: str, file_anchors: bool = False) -> Predictor:
    """Our SSD with the file's weights; ``nms`` "fast" (the file's op) or "regular" (TF's per-class NMS)."""
    model = import_ssd_tflite(path, emulate_int8).eval()
    config = model.config
    anchors = torch.from_numpy(read_ssd_tflite(path).anchors) if file_anchors else model.anchors(300, 300)

    @torch.inference_mode()
    def predict(batch: torch.Tensor) -> list[Detections]:
        found = []
        for chunk in batch.split(CHUNK):
            codes, logits = model(chunk)
            settings = (config.score_threshold, config.iou_threshold, MAX_DETECTIONS)
            if nms == "fast":
                found += fast_nms(codes, logits, anchors, *settings, config.box_coder_scales)
            else:
                found += postprocess(codes, logits, anchors, *settings, scales=config.box_coder_scales)
        return found

    return predict


def litert_predictor(path: Path, threads: int) -> Predictor:
    detector = LiteRTDetector(path, threads)
    return lambda batch: detector(batch).detections()


def in_pixels(found: Detections, width: int, height: int, to_set: dict[int, int]) -> Detections:
    """Normalized detections as the set's: boxes in the image's pixels, labels mapped (those of no category left)."""
    boxes, scores, labels = found
    keep = torch.tensor([int(label) in to_set for label in labels], dtype=torch.bool)
    mapped = torch.tensor([to_set[int(label)] for label in labels[keep]], dtype=torch.long)
    return boxes[keep] * torch.tensor([width, height, width, height]), scores[keep], mapped


def evaluate(predict: Predictor, batch: torch.Tensor, dataset: DetectionSet, to_set: dict[int, int]):
    start = time.perf_counter()
    found = predict(batch)
    seconds = time.perf_counter() - start
    records = dataset.records[: len(batch)]
    detections = [in_pixels(f, r.width, r.height, to_set) for f, r in zip(found, records, strict=True)]
    return coco_evaluate(records, dataset.classes, detections, MAX_DETECTIONS), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--shared", type=Path, default=SHARED, help="the shared data folder")
    parser.add_argument("--threads", type=int, default=2, help="LiteRT's CPU threads")
    parser.add_argument("--limit", type=int, default=128, help="score the first LIMIT val images")
    parser.add_argument("--calibration", type=int, default=100, help="COCO128 train images to calibrate our export on")
    args = parser.parse_args()
    print(f"$ {shlex.join(['python', *sys.argv])}\n{cpu_name()}, LiteRT {args.threads} threads\n")
    start = time.perf_counter()
    path = args.shared / WEIGHTS
    dataset = coco_detection(args.shared / "detection" / "coco128" / "instances_val2017_from_yolo.json")
    model = import_ssd_tflite(path)
    names, pre = model.class_names, model.preprocessing
    to_set = {column - 1: dataset.classes.index(name) for column, name in enumerate(names) if name in dataset.classes}
    records = dataset.records[: args.limit]
    batch = torch.stack([to_tensor(resize_to_input(as_rgb_image(r.image), pre), pre) for r in records])
    predictors = {
        "LiteRT (the file, its op)": litert_predictor(path, args.threads),
        "ours float, fast NMS": our_predictor(path, False, "fast"),
        "ours int8-emulated, fast NMS": our_predictor(path, True, "fast"),
        "ours int8-emulated, fast NMS, file's anchors": our_predictor(path, True, "fast", file_anchors=True),
        "ours float, regular per-class NMS": our_predictor(path, False, "regular"),
    }
    with tempfile.TemporaryDirectory() as work:
        ours = Path(work) / "int8.tflite"
        train = args.shared / "detection" / "coco128" / "images" / "train2017"
        export_tflite_int8(model, ours, train, limit=args.calibration)
        predictors["LiteRT (our int8 export, its op)"] = litert_predictor(ours, args.threads)
        predictors["ours int8-emulated, our export read back, fast NMS"] = our_predictor(ours, True, "fast")
        results: dict[str, tuple[DetectionEvaluation, float]] = {
            name: evaluate(predict, batch, dataset, to_set) for name, predict in predictors.items()
        }
    print(f"COCO128 val, {len(records)} images, at most {MAX_DETECTIONS} detections per image")
    print("| predictor | mAP@[.5:.95] | AP50 | AP75 | seconds |\n|---|---|---|---|---|")
    for name, (result, seconds) in results.items():
        print(f"| {name} | {result.map:.3f} | {result.ap50:.3f} | {result.ap75:.3f} | {seconds:.1f} |")
    print(f"| README: LiteRT | {README['map']:.3f} | {README['ap50']:.3f} | | |")
    print(f"\nwall time {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
