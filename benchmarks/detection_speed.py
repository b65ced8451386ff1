"""SSD detectors, every inference path, ms per image: SSDLite-MobileNetV2 at 320, and Google's SSD against LiteRT.

    python benchmarks/detection_speed.py [--shared DIR] [--models ssdlite google] [--weights DET.safetensors]
                                         [--postprocess-only]
                                         [any `mobilenet bench` flag: it overrides the defaults of both runs]

``ssdlite``: ``mobilenet bench --arch ssdlite_mobilenet_v2`` (the paper's Table 6 model, 320x320, 91 classes,
random weights; or ``--weights``, a trained one such as a BCCD run's ``best.safetensors``), against ours eager.
``google``: ``mobilenet bench --weights ssd_mobilenet_v1_075_coco_quant.tflite --reference litert``: TF Lite's
COCO ``detect.tflite`` (SSD, MobileNetV1 0.75, 300x300) imported into our SSD, against LiteRT on the file itself.
Each times eager PyTorch, ``optimize`` (BatchNorm folded, channels-last), a plain ONNX Runtime session, and
``deploy`` on every backend and precision installed (int8 calibrated on COCO128 train images; bf16 where the CPU
has it), interleaved; each path's input is made ready outside the timing.

What a path does per image: ours stop at the raw outputs (box codes and class logits of every anchor); LiteRT
also runs the file's ``TFLite_Detection_PostProcess`` op (decoding and NMS). So the NMS is timed on its own after
the runs, for real weights only (random logits put every anchor above the 1e-8 score threshold): the library's
``postprocess`` per image, with the model's own NMS (TF Lite's fast NMS for Google's file, TF's per-class NMS for
ours), on the outputs of COCO128 val images; for Google's file also with TF's per-class NMS at 100 detections (the
SSDLite configs' setting, the costliest: 90 classes). ``--postprocess-only`` times just that. The last line says
how much CPU other processes took meanwhile.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch
from machine import HelpFormatter, LoadMeter, cpu_name  # benchmarks/machine.py, beside this script

from mobilenet.cli import main
from mobilenet.data.images import as_rgb_image, to_tensor
from mobilenet.detection.load import load_detector
from mobilenet.detection.postprocess import postprocess
from mobilenet.detection.predict import resize_to_input
from mobilenet.tools.timing import torch_threads

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
GOOGLE = "weights/ssd_mobilenet_v1_075_coco_quant.tflite"
COCO128 = "detection/coco128/images"
NMS_IMAGES = 16


def defaults(shared: Path, model: str, weights: str | None, threads: int) -> list[str]:
    """``mobilenet bench``'s flags for one detector: ``ssdlite`` (``weights`` or random) or ``google``."""
    run = ["--arch", "ssdlite_mobilenet_v2", *(["--weights", weights] if weights else [])]
    if model == "google":
        run = ["--weights", str(shared / GOOGLE), "--reference", "litert"]
    calibration = str(shared / COCO128 / "train2017")
    return [*run, "--calibration", calibration, "--threads", str(threads), "--batch", "4", "--rounds", "3",
            "--calls", "10"]  # fmt: skip


def nms_ms(weights: Path, shared: Path, threads: int, nms: str | None = None, most: int | None = None) -> float:
    """The median ms per image of ``postprocess`` on the model's outputs for COCO128 val images, with its own NMS and
    number of detections (or ``nms`` and ``most``)."""
    model = load_detector(weights).eval()
    config, pre = model.config, model.preprocessing
    files = sorted((shared / COCO128 / "val2017").glob("*.jpg"))[:NMS_IMAGES]
    batch = torch.stack([to_tensor(resize_to_input(as_rgb_image(file), pre), pre) for file in files])
    anchors = model.anchors(pre.input_size, pre.input_size)
    times = []
    with torch_threads(threads), torch.inference_mode():
        box_codes, class_logits = model(batch)
        for codes, logits in zip(box_codes.split(1), class_logits.split(1), strict=True):
            start = time.perf_counter()
            postprocess(
                codes, logits, anchors, score_threshold=config.score_threshold, iou_threshold=config.iou_threshold,
                max_detections=most or config.max_detections, max_per_class=most or config.max_per_class,
                scales=config.box_coder_scales, nms=nms or config.nms,
            )  # fmt: skip
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--shared", type=Path, default=SHARED, help="the shared data folder")
    parser.add_argument("--models", nargs="+", default=["ssdlite", "google"], choices=["ssdlite", "google"],
                        help="which detectors to time")  # fmt: skip
    parser.add_argument("--weights", help="ssdlite: a trained SSDLite-MobileNetV2 (.safetensors) instead of random")
    parser.add_argument("--threads", type=int, default=2, help="threads of every path")
    parser.add_argument("--postprocess-only", action="store_true", help="time decoding and NMS alone")
    args, flags = parser.parse_known_args()
    print(f"$ {shlex.join(['python', *sys.argv])}\n{cpu_name()}")
    meter = LoadMeter()
    busy, own, start = meter.busy(), time.process_time(), time.perf_counter()
    status = 0
    for model in [] if args.postprocess_only else args.models:  # later flags win: the caller's override the defaults
        status |= main(["bench", *defaults(args.shared, model, args.weights, args.threads), *flags])
    real = {"google": args.shared / GOOGLE, "ssdlite": Path(args.weights) if args.weights else None}
    timed = [(model, real[model]) for model in args.models if real[model] is not None]
    if timed:
        print(f"\npostprocess alone (decoding + NMS), median ms per image over {NMS_IMAGES} COCO128 val images:")
        for model, weights in timed:
            config = load_detector(weights).config
            print(f"  {model} ({weights.name}), its {config.nms} NMS, {config.max_detections} detections: "
                  f"{nms_ms(weights, args.shared, args.threads):.2f} ms")  # fmt: skip
            if model == "google":
                ms = nms_ms(weights, args.shared, args.threads, "regular", 100)
                print(f"  {model} ({weights.name}), TF's per-class NMS, 100 detections: {ms:.2f} ms")
    wall = time.perf_counter() - start
    share = meter.share(busy, wall, time.process_time() - own)
    print(f"\nwall time {wall:.0f} s; other processes took {share:.0%} of the {meter.cpus} cores meanwhile")
    sys.exit(status)
