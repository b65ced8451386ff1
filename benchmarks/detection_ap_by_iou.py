"""Where a detector's mAP@[.5:.95] is lost: each class's AP at each of COCO's ten IoU thresholds, for one or more
detector files on the same set.

    python benchmarks/detection_ap_by_iou.py --weights DET [DET ...] [--data DIR] [--split test]

COCO's mAP is the mean over IoU 0.50, 0.55, ... 0.95 of the AP at each: a class found everywhere but boxed a few
pixels off keeps its AP50 and loses the thresholds above. The default set is BCCD's test split (``mobilenet train
--recipe ssdlite --data .../bccd``: ``--weights run/best.safetensors``); any detector file ``load_detector`` reads
and any set ``detection_dataset`` reads will do, the model's classes matched to the set's by name. Scored by
``evaluate_files`` (pycocotools), whose per-threshold precision table this prints as it is.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np
from machine import HelpFormatter, cpu_name  # benchmarks/machine.py, beside this script

from mobilenet.detection.evaluate import evaluate_files
from mobilenet.detection.load import load_detector
from mobilenet.detection.metrics import mean_precision

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)  # COCOeval's iouThrs, the first axis of its precision table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--weights", type=Path, nargs="+", required=True, help="detector files to score")
    parser.add_argument("--data", type=Path, default=SHARED / "detection" / "bccd", help="the set to score")
    parser.add_argument("--split", default="test", help="its split")
    args = parser.parse_args()
    print(f"$ {shlex.join(['python', *sys.argv])}\n{cpu_name()}\n")
    header = " | ".join(f"{t:.2f}" for t in IOU_THRESHOLDS)
    print(f"| file | class | AP % at IoU {header} | AP@[.5:.95] |\n|---|---|" + "---|" * (len(IOU_THRESHOLDS) + 1))
    for weights in args.weights:
        result = evaluate_files(lambda images, path=weights: load_detector(path), args.data, split=args.split)
        for label, name in enumerate(result.classes):
            # [IoU threshold, recall point] at every area and the most detections; -1 where there is no ground truth
            table = result.precision[:, :, label, 0, -1]
            if (table < 0).all():
                continue
            cells = " | ".join(f"{100 * mean_precision(row):.1f}" for row in table)
            print(f"| {weights} | {name} | {cells} | {100 * result.per_class[name]:.1f} |")


if __name__ == "__main__":
    main()
