"""Coral's uint8 DeepLab files as the commands run them, against Google's runtime, on images that are not VOC's.

    python benchmarks/segmentation_agreement.py [--shared DIR] [--every 10] [--threads 2]

``segment``, ``eval`` and ``predict`` deploy an int8 TFLite file as ``mobilenet.load_deployed(path)`` does: its
weights with every activation rounded to the file's integer grid (BatchNorm folded, in PyTorch); ``--float`` runs
the weights in float. For each of Coral's two files, on held-out images (every Nth of the 500 ImageNet sample images,
and COCO128's 100 val images: none of them from PASCAL VOC), the share of pixels whose class each of the two agrees
on with LiteRT running the file, over the set and on the worst image, and the wall time per image of each, in the
same run (DeepLab's protocol: each image padded to 513x513, the mask cropped back).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np
from machine import HelpFormatter, cpu_name  # benchmarks/machine.py, beside this script
from segmentation_eval import SHARED  # beside this script too

from mobilenet.registry import load_deployed
from mobilenet.segmentation.litert import LiteRTSegmenter
from mobilenet.segmentation.predict import segment

FILES = {"alpha 1.0": "deeplabv3_mnv2_pascal_quant.tflite", "alpha 0.5": "deeplabv3_mnv2_dm05_pascal_quant.tflite"}


def held_out(shared: Path, every: int) -> dict[str, list[Path]]:
    """Real images outside PASCAL VOC: every ``every``-th ImageNet sample image, and COCO128's val images."""
    return {
        f"ImageNet sample (every {every}th)": sorted((shared / "imagenet-sample").glob("*.JPEG"))[::every],
        "COCO128 val": sorted((shared / "detection" / "coco128" / "images" / "val2017").glob("*.jpg")),
    }


def timed_masks(predict, images: list[Path]) -> tuple[list[np.ndarray], float]:
    """Each image's mask, and the wall milliseconds per image."""
    start = time.perf_counter()
    masks = [predict(image) for image in images]
    return masks, (time.perf_counter() - start) / len(images) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--shared", type=Path, default=SHARED, help="the shared data folder")
    parser.add_argument("--every", type=int, default=10, help="take every Nth ImageNet sample image")
    parser.add_argument("--threads", type=int, default=2, help="LiteRT's CPU threads")
    args = parser.parse_args()
    print(f"$ {shlex.join(['python', *sys.argv])}\n{cpu_name()}, LiteRT {args.threads} threads\n")
    print("| file | images | n | as the commands run it (int8 rounded) | --float | ms per image: LiteRT, int8, float |")
    print("|---|---|---|---|---|---|")
    for alpha, name in FILES.items():
        path = args.shared / "weights" / name
        litert = LiteRTSegmenter(path, args.threads)
        runs = {emulated: load_deployed(path, emulate_int8=emulated, images=1000) for emulated in (None, False)}
        for set_name, images in held_out(args.shared, args.every).items():
            theirs, litert_ms = timed_masks(lambda image, runtime=litert: runtime.segment(image).numpy(), images)
            cells, times = [], [f"{litert_ms:.0f}"]
            for deployed in runs.values():
                ours, ms = timed_masks(lambda image, model=deployed: segment(model, [image])[0], images)
                same = [(a == b).mean() for a, b in zip(ours, theirs, strict=True)]
                pixels = sum(a.size for a in ours)
                overall = sum(float(s) * a.size for s, a in zip(same, ours, strict=True)) / pixels
                cells.append(f"{overall:.2%} (worst image {min(same):.2%})")
                times.append(f"{ms:.0f}")
            print(f"| {alpha} | {set_name} | {len(images)} | {' | '.join(cells)} | {', '.join(times)} |", flush=True)


if __name__ == "__main__":
    main()
