"""Training images/s of our MobileNetV2 against torchvision's, stepped by the same loop on the same data.

    python benchmarks/train_throughput.py --data DIR [--input-size 32 --small-input] [--steps 10 --rounds 3]

Both models go through :class:`mobilenet.training.trainer.Trainer` (same sampler, augmentation, optimizer, loss);
rounds of ``--steps`` optimizer steps alternate between them so that machine noise hits both alike.
With ``--small-input`` torchvision's model gets the same stride adaptation as ours (stem and first
strided stage at stride 1), so both do exactly the same arithmetic.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for the test-only torchvision shim
from benchmarks.references import import_torchvision

from mobilenet.classification.task import ClassificationTask
from mobilenet.tasks import make_config
from mobilenet.training.trainer import Trainer


def torchvision_model(width: float, num_classes: int, small_input: bool) -> torch.nn.Module:
    model = import_torchvision().models.mobilenet_v2(width_mult=width, num_classes=num_classes)
    if small_input:
        model.features[0][0].stride = (1, 1)
        model.features[2].conv[1][0].stride = (1, 1)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="root/<class>/<image> (e.g. CIFAR-10's train folder)")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--small-input", action="store_true")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--amp", action="store_true", help="bfloat16 autocast (as the CIFAR-10 run)")
    args = parser.parse_args()
    config = make_config(
        "modern",
        data=args.data,
        model="mobilenet_v2_100",
        width_mult=args.width,
        input_size=args.input_size,
        small_input=args.small_input,
        batch_size=args.batch_size,
        workers=2,
        ema_decay=None,
        channels_last=args.channels_last,
        amp=args.amp,
        epochs=1,
        out="/tmp/train-throughput/ours",
    )
    ours = Trainer(config, ClassificationTask(), progress=False)
    reference = Trainer(
        config.__class__(**{**config.__dict__, "out": "/tmp/train-throughput/torchvision"}),
        ClassificationTask(),
        progress=False,
        model=torchvision_model(args.width, len(ours.data.classes), args.small_input),
    )
    rates: dict[str, list[float]] = {"ours": [], "torchvision": []}
    loaders = {name: iter(t.loader(0, 0)) for name, t in (("ours", ours), ("torchvision", reference))}
    for name, trainer in (("ours", ours), ("torchvision", reference)):  # warm-up step each
        trainer.net.train()
        trainer.step(loaders[name])
    for _ in range(args.rounds):
        for name, trainer in (("ours", ours), ("torchvision", reference)):
            start = time.perf_counter()
            for _ in range(args.steps):
                trainer.step(loaders[name])
            rates[name].append(args.steps * args.batch_size / (time.perf_counter() - start))
    print(
        f"{args.data}: width {args.width}, {args.input_size}px, small_input={args.small_input}, "
        f"channels_last={args.channels_last}, amp={args.amp}, batch {args.batch_size}, "
        f"{torch.get_num_threads()} threads, {args.rounds} rounds of {args.steps} steps"
    )
    for name, values in rates.items():
        print(
            f"  {name:<12} {statistics.median(values):7.1f} training images/s (rounds: "
            f"{', '.join(f'{v:.1f}' for v in values)})"
        )
    ratio = statistics.median(rates["ours"]) / statistics.median(rates["torchvision"])
    print(f"  ours / torchvision: {ratio:.2f}x")


if __name__ == "__main__":
    main()
