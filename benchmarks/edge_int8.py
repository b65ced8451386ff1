"""Full-integer TFLite export against float and against Google's own uint8 file: accuracy, size, LiteRT latency.

    litert/bin/python benchmarks/edge_int8.py [--weights ../shared/data/weights/mobilenet_v2_1.0_224_quant.tflite]

Run in the environment that has litert-torch and ai-edge-quantizer (see ``mobilenet.inference.edge``). The
float model is Google's MobileNetV2 1.0 (Coral's file, dequantized into ours); ``export_tflite_int8``
calibrates on ``--calibration`` (Imagenette train, 200 images spread over the classes) and the three are
scored on Imagenette val (real ILSVRC2012 validation images of 10 classes, scored among all 1000): ours in
PyTorch float32, our int8 file in LiteRT, and Google's uint8 file in LiteRT. Latency: LiteRT, batch 1,
``--threads`` threads, median of ``--repeats`` invokes after a warm-up.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from machine import HelpFormatter, cpu_name  # benchmarks/machine.py, beside this script

from mobilenet.classification.data import scan_folder
from mobilenet.data.imagenet import imagenet_synsets
from mobilenet.data.images import image_batch
from mobilenet.inference.edge import export_tflite_int8, litert_interpreter, litert_top1
from mobilenet.registry import create_model
from mobilenet.weights.tflite import litert_logits

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def litert_top1_and_latency(path: Path, images: torch.Tensor, threads: int, repeats: int) -> tuple[np.ndarray, float]:
    """Top-1 of a TFLite classifier on preprocessed images, and its median latency of one invoke (ms)."""
    interpreter = litert_interpreter()(model_path=str(path), num_threads=threads)
    interpreter.allocate_tensors()
    predictions = litert_top1(interpreter, images)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        interpreter.invoke()
        times.append((time.perf_counter() - start) * 1000)
    return predictions, statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--weights", type=Path, default=SHARED / "weights" / "mobilenet_v2_1.0_224_quant.tflite")
    parser.add_argument("--calibration", type=Path, default=SHARED / "imagenette" / "train")
    parser.add_argument("--val", type=Path, default=SHARED / "imagenette" / "val")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    print(f"$ {shlex.join(['python', *sys.argv])}\n{cpu_name()}, LiteRT {args.threads} threads")
    model = create_model("mobilenet_v2", weights=args.weights).eval()
    samples, classes = scan_folder(args.val)
    synsets = imagenet_synsets()
    labels = np.array([synsets.index(classes[label]) for _, label in samples])
    images = image_batch([path for path, _ in samples], model.preprocessing)
    with torch.inference_mode():
        predicted = torch.cat([model(chunk).argmax(1) for chunk in images.split(64)]).numpy()
    float_top1 = float(np.mean(predicted == labels))
    with tempfile.TemporaryDirectory() as work:
        ours = Path(work) / "int8.tflite"
        report = export_tflite_int8(model, ours, args.calibration, limit=200)
        int8_predictions, int8_ms = litert_top1_and_latency(ours, images, args.threads, args.repeats)
        size = ours.stat().st_size
    google = litert_logits(args.weights, [path for path, _ in samples]).argmax(1)
    _, google_ms = litert_top1_and_latency(args.weights, images[:1], args.threads, args.repeats)
    print(f"{len(labels)} images of {args.val}; int8 input {report.input}\n")
    print("| model | runtime | top-1 | size | latency (batch 1) |\n|---|---|---|---|---|")
    print(f"| ours, float32 | PyTorch | {float_top1:.2%} | | |")
    int8_top1 = np.mean(int8_predictions == labels)
    print(f"| ours, int8 TFLite | LiteRT | {int8_top1:.2%} | {size / 1e6:.2f} MB | {int8_ms:.2f} ms |")
    print(f"| Google's uint8 file | LiteRT | {np.mean(google == labels):.2%} | "
          f"{args.weights.stat().st_size / 1e6:.2f} MB | {google_ms:.2f} ms |")  # fmt: skip


if __name__ == "__main__":
    main()
