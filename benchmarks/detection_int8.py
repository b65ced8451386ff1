"""What int8 costs an SSD detector in COCO mAP: ours in fp32 (PyTorch, and each backend's float export) and in int8.

    python benchmarks/detection_int8.py --weights DET [--data DIR] [--split test] [--calibration-data DIR]
                                        [--calibration-split train] [--calibration-size 100] [--limit N]
                                        [--backends openvino onnxruntime executorch] [--tflite] [--threads 2]

The default set is BCCD (blood cells, PASCAL VOC) scored on its ``test`` split, for a detector trained on its
``train`` split (``mobilenet train --recipe ssdlite --data .../bccd``: ``--weights run/best.safetensors``); any
detector file ``load_detector`` reads and any set ``detection_dataset`` reads will do (Google's COCO
``detect.tflite`` on COCO128: ``--data .../instances_val2017_from_yolo.json --calibration-data
.../instances_train2017_from_yolo.json``), the model's classes matched to the set's by name.

int8 is ``deploy(model, backend, "int8", calibration=...)``, the path ``mobilenet bench`` times: the
BatchNorm-folded ONNX graph, per-channel int8 weights and uint8 activations, ranges calibrated (by the backend's
default method) on ``--calibration-size`` images of the calibration split, spread evenly through it and resized
whole as the detector sees them; no scored image is among them. The graph ends at the raw outputs: decoding and
NMS are the library's ``postprocess`` for every row alike. Every row is scored by ``evaluate_detector``
(pycocotools). Wall time: each build (export, calibration) and each scoring.

``--tflite`` adds our full-integer TFLite file (``export_tflite_int8``, calibrated on the same images): run in
LiteRT (the network's outputs, the inputs of the file's detection op, decoded and NMS'd by the library as every
row), and read back by our importer with every activation rounded as the file rounds it.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path

import torch
from machine import HelpFormatter, LoadMeter, cpu_name  # benchmarks/machine.py, beside this script

from mobilenet.data.images import as_rgb_image, to_tensor
from mobilenet.detection.data import DetectionRecord, detection_dataset
from mobilenet.detection.evaluate import class_map_by_name, evaluate_detector
from mobilenet.detection.litert import LiteRTDetector
from mobilenet.detection.load import load_detector
from mobilenet.detection.metrics import DetectionEvaluation
from mobilenet.detection.model import SSD
from mobilenet.detection.predict import Detector, object_names, resize_to_input
from mobilenet.inference.deploy import deploy
from mobilenet.inference.edge import export_tflite_int8

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def calibration_batch(model: SSD, records: list[DetectionRecord], size: int) -> torch.Tensor:
    """``size`` images spread evenly through ``records``, as the detector's inputs (resized whole, normalized)."""
    picked = [records[i * len(records) // size] for i in range(min(size, len(records)))]
    pre = model.preprocessing
    return torch.stack([to_tensor(resize_to_input(as_rgb_image(r.image), pre), pre) for r in picked])


class LiteRTNetwork:
    """Our int8 TFLite file in LiteRT as a detector: the network's box codes and class logits as the file computes
    them (the inputs of its detection op), for the library to decode; config, anchors and input as our importer
    reads them from the file, which ``read`` also runs with every activation rounded as the file rounds it."""

    def __init__(self, path: Path, threads: int) -> None:
        self.read = load_detector(path, emulate_int8=True)
        self.runtime = LiteRTDetector(path, threads)
        self.config, self.preprocessing, self.class_names = (
            self.read.config, self.read.preprocessing, self.read.class_names
        )  # fmt: skip

    def anchors(self, height: int, width: int) -> torch.Tensor:
        return self.read.anchors(height, width)

    def __call__(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outputs = self.runtime(batch)
        return outputs.box_codes, outputs.class_logits


def split(data: Path, name: str) -> str:
    return "" if data.suffix == ".json" else f" ({name})"  # a COCO file is one split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--weights", required=True, help="the detector: .safetensors, Google's .tflite or a .pb")
    parser.add_argument("--data", type=Path, default=SHARED / "detection" / "bccd", help="the set to score")
    parser.add_argument("--split", default="test", help="the split of --data to score")
    parser.add_argument("--calibration-data", type=Path, help="the set to calibrate on (default: --data)")
    parser.add_argument("--calibration-split", default="train", help="its split to calibrate on")
    parser.add_argument("--calibration-size", type=int, default=100, help="images to calibrate on")
    parser.add_argument("--limit", type=int, help="score only the first LIMIT images")
    parser.add_argument("--backends", nargs="*", default=["openvino", "onnxruntime"],
                        choices=["openvino", "onnxruntime", "executorch"],
                        help="backends to score, fp32 and int8")  # fmt: skip
    parser.add_argument("--tflite", action="store_true", help="also our int8 TFLite file, in LiteRT and read back")
    parser.add_argument("--threads", type=int, default=2, help="threads of every runtime")
    args = parser.parse_args()
    print(f"$ {shlex.join(['python', *sys.argv])}\n{cpu_name()}, {args.threads} threads\n")
    torch.set_num_threads(args.threads)
    meter = LoadMeter()
    busy, own, start = meter.busy(), time.process_time(), time.perf_counter()
    model = load_detector(args.weights).eval()
    scored = detection_dataset(args.data, args.split)
    records = scored.records[: args.limit]
    if model.class_names is None and model.num_classes - 1 != len(scored.classes):
        raise ValueError(f"{args.weights} names no classes and predicts {model.num_classes - 1}, not the set's "
                         f"{len(scored.classes)}: pass a detector trained on this set")  # fmt: skip
    class_map = class_map_by_name(object_names(model), scored.classes) if model.class_names else None
    calibrating = detection_dataset(args.calibration_data or args.data, args.calibration_split)
    if {r.image for r in calibrating.records} & {r.image for r in records}:
        raise ValueError("the calibration images include scored ones: pass another --calibration-split")
    calibration = calibration_batch(model, calibrating.records, args.calibration_size)
    print(f"{args.weights}: {model.config.arch} width {model.config.width_mult:g} at {model.config.input_size}, "
          f"{model.config.nms} NMS; scoring {len(records)} images of {args.data}{split(args.data, args.split)}; "
          f"calibrating on {len(calibration)} of {args.calibration_data or args.data}"
          f"{split(args.calibration_data or args.data, args.calibration_split)}\n")  # fmt: skip

    detectors: dict[str, tuple[Detector, float, float]] = {"fp32 PyTorch eager": (model, 0.0, 0.0)}
    for backend in args.backends:
        for precision in ("fp32", "int8"):
            built = time.perf_counter()
            given = calibration if precision == "int8" else None
            deployed = deploy(model, backend, precision, given, args.threads, calibration_size=len(calibration))
            method = f", {deployed.calibration_method}" if deployed.calibration_method else ""
            detectors[f"{precision} {backend}{method}"] = (deployed, time.perf_counter() - built, deployed.size_bytes)
            print(f"built {precision} {backend} in {time.perf_counter() - built:.1f} s", flush=True)
    results: dict[str, tuple[DetectionEvaluation, float]] = {}
    with tempfile.TemporaryDirectory() as work:
        if args.tflite:
            built, path = time.perf_counter(), Path(work) / "int8.tflite"
            export_tflite_int8(model, path, calibration, limit=len(calibration))
            seconds, size = time.perf_counter() - built, path.stat().st_size
            network = LiteRTNetwork(path, args.threads)
            detectors["int8 TFLite, ours, in LiteRT"] = (network, seconds, size)
            detectors["int8 TFLite, ours, read back (int8-emulated)"] = (network.read.eval(), 0.0, size)
            print(f"built our int8 TFLite file in {seconds:.1f} s", flush=True)
        for name, (detector, _, _) in detectors.items():
            scoring = time.perf_counter()
            found = evaluate_detector(detector, records, scored.classes, class_map=class_map)
            results[name] = (found, time.perf_counter() - scoring)
    reference = results["fp32 PyTorch eager"][0].map
    print(f"\n{len(records)} images, at most {model.config.max_detections} detections per image")
    print("| predictor | mAP@[.5:.95] | AP50 | AP75 | mAP - fp32 eager | build s | score s | MB |")
    print("|---|---|---|---|---|---|---|---|")
    for name, (found, seconds) in results.items():
        _, build_s, size = detectors[name]
        size_mb = f"{size / 1e6:.1f}" if size else "-"
        print(f"| {name} | {found.map:.4f} | {found.ap50:.4f} | {found.ap75:.4f} | {found.map - reference:+.4f} | "
              f"{build_s:.1f} | {seconds:.1f} | {size_mb} |")  # fmt: skip
    classes = list(results["fp32 PyTorch eager"][0].per_class)
    print(f"\nAP@[.5:.95] per class\n| predictor | {' | '.join(classes)} |\n{'|---' * (len(classes) + 1)}|")
    for name, (found, _) in results.items():
        print(f"| {name} | " + " | ".join(f"{found.per_class[c]:.4f}" for c in classes) + " |")
    wall = time.perf_counter() - start
    share = meter.share(busy, wall, time.process_time() - own)
    print(f"\nwall time in all {wall:.0f} s; other processes took {share:.0%} of the {meter.cpus} cores meanwhile")


if __name__ == "__main__":
    main()
