"""Which of a detector's feature channels still carry anything: per activation, the channels whose output is the
same number at every position of every image (a ReLU6 stuck at 0 or at 6), for one or more detector files.

    python benchmarks/detection_saturation.py --weights DET [DET ...] [--start CLASSIFIER] [--images N]

A channel that is constant over the images tells the layers above it nothing, and gets no gradient through its
ReLU6 to leave that state. Fine-tuning SSDLite from Coral's MobileNetV2 file (BatchNorm folded, its statistics
frozen) with AdamW at the head's learning rate on the backbone drove its stride-32 layers there (BENCHMARKS.md,
"Fine-tuning on BCCD"): when every one of the last layer's 1280 channels is constant, the stride-32 map and every
extra layer above it see the same input for every image, and the objects their anchors match (BCCD's white cells)
are not learned. ``--start`` adds the file the runs started from (an ImageNet classifier) as the first row, and a
column of how far each run moved the backbone's convolutions from it. The images are the first ``--images`` of
BCCD's (any folder of JPEGs with ``--data``), resized whole to the input. The trainer counts the same on the
validation images after every epoch (``mobilenet.training.saturation``) and warns when a whole layer has stopped.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import torch
from machine import HelpFormatter, cpu_name  # benchmarks/machine.py, beside this script
from PIL import Image
from torch import nn

from mobilenet.data.images import to_tensor
from mobilenet.detection.load import detector_from_classifier, load_detector
from mobilenet.detection.predict import resize_to_input
from mobilenet.nn.preprocessing import Preprocessing
from mobilenet.training.saturation import ConstantChannels

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
# The expansions of the stride-32 blocks, and the backbone's last layer (1280 channels: SSDLite's second map, and
# the input of every extra layer), with the expansion of block 13 (its first map) below them for comparison.
LAYERS = (
    "backbone.features.14.conv.0",
    "backbone.features.15.conv.0",
    "backbone.features.16.conv.0",
    "backbone.features.17.conv.0",
    "backbone.features.18",
)


@torch.no_grad()
def constant_channels(model: nn.Module, batch: torch.Tensor) -> list[tuple[int, int]]:
    """Per layer of ``LAYERS``: (channels whose output is one number over the batch, channels)."""
    with ConstantChannels(model, list(LAYERS)) as constant:
        model.eval()(batch)
    counts = constant.counts(batch.device)
    return [counts[name] for name in LAYERS]


def weights_moved(model: nn.Module, start: nn.Module) -> tuple[float, float]:
    """How far fine-tuning moved the backbone's convolutions from the start: per layer ||W - W0|| / ||W0||, the
    median and the largest over the layers."""
    before = start.state_dict()
    moved = sorted(
        float((weight - before[name]).norm() / before[name].norm())
        for name, weight in model.state_dict().items()
        if name.startswith("backbone.") and weight.dim() == 4
    )
    return moved[len(moved) // 2], moved[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--weights", type=Path, nargs="+", required=True, help="detector files (a run's safetensors)")
    parser.add_argument("--start", type=Path, help="the classifier the runs started from, as the first row")
    parser.add_argument("--data", type=Path, default=SHARED / "detection" / "bccd", help="a folder with JPEGs in it")
    parser.add_argument("--images", type=int, default=32, help="how many of its images")
    args = parser.parse_args()
    print(f"$ {shlex.join(['python', *sys.argv])}\n{cpu_name()}\n")
    paths = sorted(args.data.rglob("*.jpg"))[: args.images]
    if not paths:
        sys.exit(f"error: no .jpg under {args.data}: give --data a folder of JPEG images")
    models = [(str(path), load_detector(path)) for path in args.weights]
    # The start's backbone, with new extra layers and heads at the runs' input size (they leave its channels as
    # they are), and how far each run moved its weights.
    start = args.start and detector_from_classifier(args.start, input_size=models[0][1].config.input_size)
    if start is not None:
        models.insert(0, (f"{args.start} (untrained head)", start))
    names = " | ".join(name.removeprefix("backbone.") for name in LAYERS)
    moved = " | backbone convs moved, median / most" if start is not None else ""
    print(f"| file | {names}{moved} |\n|---|" + "---|" * (len(LAYERS) + (start is not None)))
    pictures = [Image.open(path).convert("RGB") for path in paths]  # decoded once, for every model
    batches: dict[Preprocessing, torch.Tensor] = {}  # and resized once per input the models take
    for label, model in models:
        pre = model.preprocessing
        if pre not in batches:
            batches[pre] = torch.stack([to_tensor(resize_to_input(picture, pre), pre) for picture in pictures])
        counts = " | ".join(f"{constant} / {total}" for constant, total in constant_channels(model, batches[pre]))
        distance = " | {:.0%} / {:.0%}".format(*weights_moved(model, start)) if start is not None else ""
        print(f"| {label} | {counts}{distance} |")


if __name__ == "__main__":
    main()
