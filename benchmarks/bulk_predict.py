"""Bulk inference into a results file against the deploy path's own batch throughput on pre-decoded tensors.

    python benchmarks/bulk_predict.py [--weights FILE] [--repeat 4] [--backend auto]

The real images of ``../shared`` at their stored sizes (imagenet-sample's ~500x375, Imagenette val's 224 squares,
COCO128's 640x480: 2,722 files), listed ``--repeat`` times (10,888 with 4): ``mobilenet predict --out
results.jsonl`` as a library call (decode, preprocess, the model, JSON lines flushed a chunk at a time) against the
same deployed model called on batches of 32 decoded and preprocessed beforehand (the first 1,024 images). Prints
both rates and their ratio.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from mobilenet.data.images import image_batch, image_files
from mobilenet.inference.bulk import predict_to_file
from mobilenet.registry import kind_of_file, load_deployed

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MOBILENET_SHARED", ROOT.parent / "shared")) / "data"
FOLDERS = ("imagenet-sample", "imagenette/val", "detection/coco128/images")
BATCH = 32
PREDECODED = 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=str(SHARED / "weights" / "mobilenet_v2_1.0_224_quant.tflite"))
    parser.add_argument("--repeat", type=int, default=4)
    parser.add_argument("--backend", default="auto")
    args = parser.parse_args()
    files = image_files([SHARED / folder for folder in FOLDERS])
    images = files * args.repeat
    kind = kind_of_file(args.weights)
    runner = load_deployed(args.weights, args.backend, images=len(images))
    print(f"{len(files)} files x {args.repeat} = {len(images)} images, {kind.name}, {type(runner).__name__}")

    pixels = image_batch(files[:PREDECODED], runner.preprocessing)
    runner(pixels[:BATCH])  # warm-up
    start = time.perf_counter()
    with torch.no_grad():
        for first in range(0, len(pixels), BATCH):
            runner(pixels[first : first + BATCH])
    deploy_rate = len(pixels) / (time.perf_counter() - start)

    with tempfile.TemporaryDirectory() as folder:
        done = predict_to_file(lambda chunk: kind.call("predict", runner, chunk), images, Path(folder) / "r.jsonl")
    bulk_rate = done.written / done.seconds
    print(f"deploy path on pre-decoded batches of {BATCH}: {deploy_rate:.0f} images/s")
    print(f"predict --out results.jsonl: {bulk_rate:.0f} images/s ({bulk_rate / deploy_rate:.2f}x)")


if __name__ == "__main__":
    main()
