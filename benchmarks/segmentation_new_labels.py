"""Fine-tuning Mobile DeepLabv3 to a new label set: from Coral's VOC DeepLab with a new last layer, and with every row
of it started from VOC's (kept by name, merged), against the same head trained from scratch on the ImageNet
classifier's backbone; the same recipe, data and epochs.

    python benchmarks/segmentation_new_labels.py [--shared DIR] [--epochs 5] [--out DIR]

The new label set is VOC's 21 classes merged into 5 (``MERGED``: background, vehicle, animal, person, indoor), a
set of its own with a ``classes.txt``: the 311 VOC 2012 train pairs of ``../shared`` to train on, its 161 val pairs
to validate on, masks rewritten (void kept), images linked. Each run is ``mobilenet train --recipe deeplab --data
SET --weights W --epochs N`` and the flags of ``RUNS`` in a process of its own; the table gives each epoch's val
mIoU from its metrics.csv (DeepLab's protocol at the training crop) and its wall time; beside them, Coral's DeepLab
untrained, its predictions of VOC's classes merged as the masks are.
"""

from __future__ import annotations

import argparse
import csv
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from machine import HelpFormatter, cpu_name  # benchmarks/machine.py, beside this script
from PIL import Image

from mobilenet.registry import create_model
from mobilenet.segmentation.data import CLASSES_FILE, IGNORE_INDEX, VOC_CLASSES, segmentation_dataset
from mobilenet.segmentation.evaluate import evaluate_segmentation
from mobilenet.segmentation.predict import model_predictor
from mobilenet.tasks import recipes

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
MERGED = {
    "background": ("background",),
    "vehicle": ("aeroplane", "bicycle", "boat", "bus", "car", "motorbike", "train"),
    "animal": ("bird", "cat", "cow", "dog", "horse", "sheep"),
    "person": ("person",),
    "indoor": ("bottle", "chair", "diningtable", "pottedplant", "sofa", "tvmonitor"),
}
CORAL, IMAGENET = "weights/deeplabv3_mnv2_pascal_quant.tflite", "weights/mobilenet_v2_1.0_224_quant.tflite"
RUNS = {  # run name -> the weights it starts from, and how its last layer starts
    "from Coral's VOC DeepLab, a new last layer (the default: 2 of the 5 classes share a name with VOC's)": (CORAL, []),
    "from Coral's VOC DeepLab, every row started: those 2 by name, the rest merged (--merge-classes)": (
        CORAL, ["--merge-classes", ";".join(f"{new}={'+'.join(olds)}" for new, olds in MERGED.items() if len(olds) > 1)]
    ),
    "from the ImageNet classifier (the head from scratch)": (IMAGENET, []),
}  # fmt: skip


def merged_set(voc: Path, out: Path) -> Path:
    """``out`` with ``train/`` and ``val/`` VOC folders of ``voc``'s pairs in the merged classes and a classes.txt."""
    table = np.full(256, IGNORE_INDEX, np.uint8)
    for index, names in enumerate(MERGED.values()):
        for name in names:
            table[VOC_CLASSES.index(name)] = index
    for split in ("train", "val"):
        (out / split / "SegmentationClass").mkdir(parents=True)
        for name in ("JPEGImages", "ids.txt"):
            (out / split / name).symlink_to((voc / split / name).resolve())
        for mask in sorted((voc / split / "SegmentationClass").glob("*.png")):
            values = np.asarray(Image.open(mask))
            Image.fromarray(table[values]).save(out / split / "SegmentationClass" / mask.name)
    (out / CLASSES_FILE).write_text("\n".join(MERGED) + "\n")
    return out


def merged_predictions(weights: Path, val: Path, crop: int) -> float:
    """The val mIoU of Coral's DeepLab itself, its 21 classes' predictions merged, at the runs' crop: no training."""
    model = create_model("deeplabv3_mobilenet_v2", weights=weights).eval()
    table = torch.tensor([next(i for i, names in enumerate(MERGED.values()) if name in names) for name in VOC_CLASSES])
    predict = model_predictor(model)
    return evaluate_segmentation(lambda pixels: table[predict(pixels).argmax(1)], segmentation_dataset(val), crop).miou


def train(data: Path, weights: Path, flags: list[str], epochs: int, out: Path) -> tuple[list[float], float]:
    """One ``mobilenet train`` run with ``flags``: its val mIoU per epoch and its wall time."""
    command = [sys.executable, "-m", "mobilenet", "train", "--recipe", "deeplab", "--data", str(data),
               "--weights", str(weights), *flags, "--epochs", str(epochs), "--out", str(out)]  # fmt: skip
    print(f"$ {shlex.join(command[1:])}", flush=True)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    with (out / "metrics.csv").open() as rows:
        return [float(row["val_miou"]) for row in csv.DictReader(rows)], time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--shared", type=Path, default=SHARED, help="the shared data folder")
    parser.add_argument("--epochs", type=int, default=5, help="epochs of each run")
    parser.add_argument("--out", type=Path, help="where the runs go (default: a temporary folder)")
    args = parser.parse_args()
    print(f"$ {shlex.join(['python', *sys.argv])}\n{cpu_name()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}\n")
    with tempfile.TemporaryDirectory() as work:
        out = args.out or Path(work)
        data = merged_set(args.shared / "segmentation" / "voc2012", out / "merged")
        crop = recipes()["deeplab"].input_size
        untrained = merged_predictions(args.shared / CORAL, data / "val", crop)
        results = {
            name: train(data, args.shared / weights, flags, args.epochs, out / f"run{index}")
            for index, (name, (weights, flags)) in enumerate(RUNS.items())
        }
    print(f"\n{', '.join(MERGED)}: val mIoU (%) after each epoch, 311 train pairs, 161 val\n")
    print("| start | " + " | ".join(str(e + 1) for e in range(args.epochs)) + " | minutes |")
    print("|---" * (args.epochs + 2) + "|")
    for name, (mious, seconds) in results.items():
        print(f"| {name} | " + " | ".join(f"{100 * m:.2f}" for m in mious) + f" | {seconds / 60:.1f} |")
    print(
        f"\nCoral's VOC DeepLab untrained, its 21 classes' predictions merged (at the runs' crop, {crop}): "
        f"{100 * untrained:.2f}%"
    )


if __name__ == "__main__":
    main()
