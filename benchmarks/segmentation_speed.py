"""Mobile DeepLabv3 at 513x513, every inference path, against Google's runtime on the file the weights came from.

    python benchmarks/segmentation_speed.py [--shared DIR] [any `mobilenet bench` flag: it overrides the default]

This is ``mobilenet bench --weights deeplabv3_mnv2_pascal_quant.tflite --reference litert`` (Coral's PASCAL VOC
model, MobileNetV2 1.0, output stride 16): eager PyTorch, ``optimize`` (BatchNorm folded, channels-last), a plain
ONNX Runtime session, and ``deploy`` on every backend and precision installed (int8 calibrated on 100 VOC 2012
train images; bf16 where the CPU has it), run interleaved with LiteRT on Coral's own uint8 file, the reference of
every ratio.

What each path does per image: ours take a normalized float image and give 21 logit maps at 513x513; LiteRT takes
the raw uint8 pixels and gives the 513x513 class map (the argmax is in Coral's file). Each path's input is made
ready outside the timing. The last line says how much CPU other processes took during the run.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from machine import HelpFormatter, LoadMeter, cpu_name  # benchmarks/machine.py, beside this script

from mobilenet.cli import main

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def defaults(shared: Path) -> list[str]:
    weights, calibration = shared / "weights/deeplabv3_mnv2_pascal_quant.tflite", shared / "segmentation/voc2012/train"
    return [
        "--weights", str(weights), "--reference", "litert", "--calibration", str(calibration / "JPEGImages"),
        "--threads", "2", "--batch", "4", "--rounds", "3", "--calls", "10",
    ]  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--shared", type=Path, default=SHARED, help="the shared data folder")
    args, flags = parser.parse_known_args()
    print(f"$ {shlex.join(['python', *sys.argv])}\n{cpu_name()}")
    meter = LoadMeter()
    busy, own, start = meter.busy(), time.process_time(), time.perf_counter()
    status = main(["bench", *defaults(args.shared), *flags])  # later flags win: the caller's override the defaults
    wall = time.perf_counter() - start
    share = meter.share(busy, wall, time.process_time() - own)
    print(f"\nwall time {wall:.0f} s; other processes took {share:.0%} of the {meter.cpus} cores meanwhile")
    sys.exit(status)
