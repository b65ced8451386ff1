"""Full-integer TFLite export against float and against Google's own uint8 file: accuracy, size, LiteRT latency.

    python benchmarks/edge_int8.py [--weights ../shared/data/weights/mobilenet_v2_1.0_224_quant.tflite]

The float model is Google's MobileNetV2 1.0 (Coral's file, dequantized into ours); ``export_tflite_int8``
calibrates on ``--calibration`` (Imagenette train, 200 images spread over the classes) and the three are
scored on Imagenette val (real ILSVRC2012 validation images of 10 classes, scored among all 1000): ours in
PyTorch float32, our int8 file in LiteRT, and Google's uint8 file in LiteRT. Round trip: each file imported
by our importer and run in PyTorch, in float and rounding every activation as the file does (``emulate_int8``),
against LiteRT's top-1 on the same file (a tie that includes ours counts). Latency: LiteRT, batch 1,
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
from mobilenet.inference.edge import export_tflite_int8, top1_agreement
from mobilenet.registry import create_model
from mobilenet.runtimes.litert import interpreter, outputs
from mobilenet.weights.tflite import import_tflite

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def outputs_and_latency(path: Path, images: torch.Tensor, threads: int, repeats: int) -> tuple[np.ndarray, float]:
    """Outputs of a TFLite classifier on preprocessed images, and its median latency of one invoke (ms)."""
    runtime = interpreter(path, threads=threads)
    found = outputs(runtime, images.permute(0, 2, 3, 1).numpy())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        runtime.invoke()
        times.append((time.perf_counter() - start) * 1000)
    return found, statistics.median(times)


def float_logits(model: torch.nn.Module, images: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        return torch.cat([model.eval()(chunk) for chunk in images.split(64)]).numpy()


def round_trip(path: Path, images: torch.Tensor, litert_outputs: np.ndarray) -> str:
    """Top-1 agreement with LiteRT's outputs of the file imported by our reader, in float / emulating its int8."""
    found = []
    for emulate in (False, True):
        model, _ = import_tflite(path, drop_background=False, emulate_int8=emulate)
        found.append(f"{top1_agreement(float_logits(model, images), litert_outputs):.2%}")
    return " / ".join(found)


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
    images = image_batch([path for path, _ in samples], model.preprocessing)  # Google's file's own preprocessing
    logits = float_logits(model, images)
    with tempfile.TemporaryDirectory() as work:
        ours = Path(work) / "int8.tflite"
        report = export_tflite_int8(model, ours, args.calibration, limit=200)
        int8_outputs, int8_ms = outputs_and_latency(ours, images, args.threads, args.repeats)
        int8_round_trip = round_trip(ours, images, int8_outputs)
        size = ours.stat().st_size
    google_outputs, google_ms = outputs_and_latency(args.weights, images, args.threads, args.repeats)
    google_round_trip = round_trip(args.weights, images, google_outputs)
    google_outputs = google_outputs[:, 1:]  # class 0 is background
    print(f"{len(labels)} images of {args.val}; int8 input {report.input}\n")
    print("| model | runtime | top-1 | imported back: top-1 agreement with LiteRT, float / int8 emulated | size | "
          "latency (batch 1) |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    print(f"| ours, float32 | PyTorch | {np.mean(logits.argmax(1) == labels):.2%} | | | |")
    print(f"| ours, int8 TFLite | LiteRT | {np.mean(int8_outputs.argmax(1) == labels):.2%} | {int8_round_trip} | "
          f"{size / 1e6:.2f} MB | {int8_ms:.2f} ms |")  # fmt: skip
    print(f"| Google's uint8 file | LiteRT | {np.mean(google_outputs.argmax(1) == labels):.2%} | "
          f"{google_round_trip} | {args.weights.stat().st_size / 1e6:.2f} MB | "
          f"{google_ms:.2f} ms |")  # fmt: skip


if __name__ == "__main__":
    main()
