"""The MobileNetV2 paper's Figure 6 ablations on CIFAR-10, through the real trainer, several seeds each.

    python benchmarks/figure6.py --out runs/figure6 [--train-per-class 1000 --val-per-class 200]
                                 [--epochs 6 --seeds 0 1 2] [--cifar ../shared/data/cifar10-jpg.tar.gz]

The budget, and why: the paper trains on ImageNet for hundreds of epochs; here two CPU cores train
MobileNetV2 0.35 with ``small_input`` at 32x32 (bf16 autocast, channels-last) at about 230 images/s, so a
full 50,000-image epoch takes about 4 minutes. Four variants times three seeds must fit in about an hour:
each run sees a class-balanced 10,000 training images (the first 1,000 of each class) for 6 epochs and is
scored on 2,000 images of CIFAR-10's test split (the first 200 of each class). At this budget the models
are far from converged (roughly 50-60% top-1); the plot shows mean and min-max over seeds so that the
reader sees which gaps exceed the seed-to-seed spread.

The archive is unpacked into ``--out`` (keep it outside the repository), the chosen images linked into
``--out/data``; the runs go to ``--out`` as ``<variant>-seed<N>/``, and a sweep that stops part way
continues where it stopped when run again.
It ends by printing the table and writing ``figure6.png`` into ``--out``; ``mobilenet paper --ablation
<out>`` puts both in the report.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tarfile
import tempfile
from pathlib import Path

from machine import HelpFormatter, cpu_name  # benchmarks/machine.py, beside this script

from mobilenet.paper.ablation import VARIANTS, ablation_rows, plot_ablation, read_ablation, run_ablation
from mobilenet.tasks import make_config

SHARED = Path(__file__).resolve().parents[2] / "shared"


def balanced_subset(split: Path, dest: Path, per_class: int) -> None:
    """Links to the first ``per_class`` images (sorted by name) of every class folder of ``split``."""
    for class_dir in sorted(p for p in split.iterdir() if p.is_dir()):
        target = dest / class_dir.name
        target.mkdir(parents=True)
        for image in sorted(class_dir.iterdir())[:per_class]:
            (target / image.name).symlink_to(image)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="the sweep's folder (reused to continue it)")
    parser.add_argument("--cifar", type=Path, default=SHARED / "data" / "cifar10-jpg.tar.gz")
    parser.add_argument("--train-per-class", type=int, default=1000)
    parser.add_argument("--val-per-class", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--model", default="mobilenet_v2_035")
    args = parser.parse_args()
    if not args.cifar.is_file():
        sys.exit(f"{args.cifar} not found: pass --cifar with the path of cifar10-jpg.tar.gz")
    print(f"$ {shlex.join(['python', *sys.argv])}\n{cpu_name()}")
    data, images = args.out / "data", args.out / "cifar10"
    args.out.mkdir(parents=True, exist_ok=True)
    if not images.is_dir():  # unpacked once, beside the runs, so that a resumed run finds its images again
        with tempfile.TemporaryDirectory(prefix="unpacking-", dir=args.out) as tmp:
            with tarfile.open(args.cifar) as archive:
                archive.extractall(tmp, filter="data")
            next(Path(tmp).glob("*/train")).parent.rename(images)
    if not data.is_dir():
        with tempfile.TemporaryDirectory(prefix="linking-", dir=args.out) as tmp:
            balanced_subset(images.resolve() / "train", Path(tmp) / "train", args.train_per_class)
            balanced_subset(images.resolve() / "test", Path(tmp) / "val", args.val_per_class)
            Path(tmp).rename(data)
            Path(tmp).mkdir()  # for the context manager's clean-up
    base = make_config(
        "modern",
        data=str(data.resolve()),
        model=args.model,
        input_size=32,
        small_input=True,
        epochs=args.epochs,
        batch_size=128,
        crop_scale_min=0.5,  # a 32x32 image cropped to 8% of its area keeps almost nothing
        amp=True,
        channels_last=True,
        workers=0,
    )
    run_ablation(base, args.out, args.seeds, args.variants)
    curves = read_ablation(args.out)
    print("| variant | seeds | epochs | final val top-1, mean ± std | min-max | vs the paper's design |")
    print("|---|---|---|---|---|---|")
    for row in ablation_rows(curves):
        gap = "" if row["gap_to_linear"] is None else f"{row['gap_to_linear'] * 100:+.2f}"
        print(
            f"| {row['label']} | {row['seeds']} | {row['epochs']} | {row['top1_mean']:.2%} ± {row['top1_std']:.2%} "
            f"| {row['top1_min']:.2%}-{row['top1_max']:.2%} | {gap} |"
        )
    plot_ablation(curves, args.out / "figure6.png")
    print(f"plot: {args.out / 'figure6.png'}")


if __name__ == "__main__":
    main()
