"""Table 7's inference settings on real data: output stride 16 or 8, one scale or multi-scale + flip ("MF").

    python benchmarks/segmentation_multiscale.py [--limit 20] [--threads 2]

Coral's Mobile DeepLabv3 (MobileNetV2 1.0, VOC) imported in float, scored with DeepLab's protocol on every k-th of
the 161 VOC 2012 val images of ``../shared`` (``--limit`` of them, spread evenly): OS 16 and 8, each at one scale
and with DeepLab's scales 0.5-1.75 and left-right flips (``mobilenet.segmentation.multiscale``), with the seconds
per image. The paper's Table 7 (on all 1,449 val images, its own training): 75.32% at OS 16, 75.70% with MF, and
77.33% for OS 8 + MF.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from mobilenet.segmentation.config import DEEPLAB_SCALES
from mobilenet.segmentation.data import SegmentationPairs, voc_pairs
from mobilenet.segmentation.evaluate import evaluate_model
from mobilenet.segmentation.load import load_deeplab

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MOBILENET_SHARED", ROOT.parent / "shared")) / "data"
WEIGHTS = SHARED / "weights" / "deeplabv3_mnv2_pascal_quant.tflite"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=20, help="VOC val images scored, spread evenly (161: all)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pairs = voc_pairs(SHARED / "segmentation" / "voc2012" / "val")
    step = max(1, len(pairs) // args.limit)
    dataset = SegmentationPairs(pairs[::step][: args.limit])
    print(f"Coral's DeepLab 1.0 in float, {len(dataset)} VOC val images, {args.threads} threads")
    print("| output stride | inference | mIoU | s / image |\n|---|---|---|---|")
    for stride in (16, 8):
        model = load_deeplab(WEIGHTS, output_stride=stride).eval()
        for name, scales, flip in (("one scale", None, False), ("MF: scales 0.5-1.75, flip", DEEPLAB_SCALES, True)):
            start = time.perf_counter()
            scores = evaluate_model(model, dataset, batch_size=1, scales=scales, flip=flip)
            seconds = (time.perf_counter() - start) / len(dataset)
            print(f"| {stride} | {name} | {scores.miou:.2%} | {seconds:.2f} |", flush=True)


if __name__ == "__main__":
    main()
