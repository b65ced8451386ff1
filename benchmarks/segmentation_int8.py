"""What int8 costs Mobile DeepLabv3 in mIoU: ours in fp32, ours in int8, and LiteRT on Coral's uint8 file.

    python benchmarks/segmentation_int8.py [--shared DIR] [--threads 2] [--calibration-size 100]
                                           [--backends openvino onnxruntime executorch] [--voc]

The model is our float import of Coral's PASCAL VOC DeepLab (MobileNetV2 1.0, output stride 16). Its int8 is
``deploy(model, backend, "int8", calibration=...)``, the path ``mobilenet bench`` times: the BatchNorm-folded ONNX
graph, per-channel int8 weights and uint8 activations, ranges calibrated (by the backend's default method) on the
first N images of VOC 2012 train, resized and center-cropped to 513 as ``deploy`` reads a folder; no test image is
among them. Every predictor is scored by ``mobilenet.segmentation.evaluate`` with DeepLab's protocol (see
benchmarks/segmentation_eval.py) on COCO128's 100 labelled val images, COCO's classes mapped to VOC's, and with
``--voc`` on the 161 VOC 2012 val images too. Wall time: each int8 build (export and calibration) and each scoring.

Our full-integer TFLite export of the same model (``export_tflite_int8``, calibrated on the same train images) is
run in LiteRT beside Coral's own file, with and without its bias correction, and read back by our importer with every
activation rounded as the file rounds it (``load_deeplab(..., emulate_int8=True)``).
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
from segmentation_eval import SHARED, class_table, datasets, score, summary_table  # beside this script too

from mobilenet.data.images import normalize
from mobilenet.inference.deploy import Deployed, deploy
from mobilenet.inference.edge import export_tflite_int8
from mobilenet.registry import create_model
from mobilenet.segmentation.litert import LiteRTSegmenter
from mobilenet.segmentation.load import load_deeplab
from mobilenet.segmentation.predict import Predictor, model_predictor

WEIGHTS = "weights/deeplabv3_mnv2_pascal_quant.tflite"


def deployed_predictor(deployed: Deployed) -> Predictor:
    """A deployed segmentation model fed as DeepLab evaluates: padded uint8 pixels, normalized as its weights expect."""
    return lambda pixels: deployed(normalize(pixels, deployed.preprocessing))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--shared", type=Path, default=SHARED, help="the shared data folder")
    parser.add_argument("--threads", type=int, default=2, help="threads of every runtime")
    parser.add_argument("--calibration-size", type=int, default=100, help="VOC 2012 train images to calibrate on")
    parser.add_argument("--backends", nargs="*", default=["openvino"],
                        choices=["openvino", "onnxruntime", "executorch"], help="int8 backends to score")  # fmt: skip
    parser.add_argument("--voc", action="store_true", help="also score the 161 VOC 2012 val images")
    args = parser.parse_args()
    print(f"$ {shlex.join(['python', *sys.argv])}\n{cpu_name()}, {args.threads} threads\n")
    torch.set_num_threads(args.threads)
    meter = LoadMeter()
    busy, own, start = meter.busy(), time.process_time(), time.perf_counter()
    sets = datasets(args.shared)
    if not args.voc:
        del sets["VOC 2012 val"]
    model = create_model("deeplabv3_mobilenet_v2", weights=args.shared / WEIGHTS).eval()
    predictors: dict[str, Predictor] = {"ours fp32 (PyTorch eager)": model_predictor(model)}
    calibration = args.shared / "segmentation" / "voc2012" / "train" / "JPEGImages"
    for backend in args.backends:
        built = time.perf_counter()
        deployed = deploy(model, backend, "int8", calibration, args.threads, calibration_size=args.calibration_size)
        name = f"ours int8 ({backend}, {deployed.calibration_method})"
        predictors[name] = deployed_predictor(deployed)
        print(f"built {name} in {time.perf_counter() - built:.1f} s ({deployed.size_bytes / 1e6:.1f} MB)", flush=True)
    predictors["LiteRT Coral uint8"] = LiteRTSegmenter(args.shared / WEIGHTS, args.threads)
    with tempfile.TemporaryDirectory() as work:
        built, ours, uncorrected = time.perf_counter(), Path(work) / "int8.tflite", Path(work) / "uncorrected.tflite"
        export_tflite_int8(model, ours, calibration, limit=args.calibration_size)
        print(f"built our int8 TFLite file in {time.perf_counter() - built:.1f} s", flush=True)
        export_tflite_int8(model, uncorrected, calibration, limit=args.calibration_size, bias_correction=False)
        predictors["LiteRT, our int8 TFLite export"] = LiteRTSegmenter(ours, args.threads)
        predictors["LiteRT, our int8 TFLite export without bias correction"] = LiteRTSegmenter(
            uncorrected, args.threads
        )
        predictors["ours, our int8 TFLite export read back (int8-emulated)"] = model_predictor(
            load_deeplab(ours, emulate_int8=True).eval()
        )
        results, seconds = score(predictors, sets)
    print(summary_table(results))
    print("\nwall time, scoring: " + ", ".join(f"{name} {s:.1f} s" for name, s in seconds.items()))
    wall = time.perf_counter() - start
    share = meter.share(busy, wall, time.process_time() - own)
    print(f"wall time in all {wall:.0f} s; other processes took {share:.0%} of the {meter.cpus} cores meanwhile")
    for name, row in results.items():
        print(f"\n{name}: IoU per class\n{class_table(row)}")


if __name__ == "__main__":
    main()
