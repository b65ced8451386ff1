"""``mobilenet paper``: the MobileNetV2 paper's tables and figures beside ours, as one Markdown report."""

from __future__ import annotations

import argparse
from pathlib import Path

from mobilenet.cli.output import add_force

HELP = "the paper's tables and figures beside ours, measured here (Markdown)"
DESCRIPTION = (
    "The MobileNetV2 paper's tables and figures beside what this library counts and measures on this machine, as "
    "report.md with its PNGs; each section says whether the paper's result is reproduced here, and why not where "
    "it cannot be."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("mobilenet-paper"), help="folder for report.md and its PNGs")
    parser.add_argument("--quick", action="store_true", help="fewer seeds and timings: a few minutes on a laptop")
    parser.add_argument("--ablation", type=Path, help="a finished Figure 6 sweep (benchmarks/figure6.py --out DIR)")
    parser.add_argument("--weights", type=Path, help="classifier weights to score for Table 4 (with --images)")
    parser.add_argument("--images", type=Path, help="labelled images, one folder per class (ImageNet synsets)")
    parser.add_argument("--class-index", type=Path, help="synset -> index JSON (imagenet_class_index.json)")
    add_force(parser, "report.md and the PNGs of an earlier report in --out")


def run(args: argparse.Namespace) -> int:
    from mobilenet.cli.kinds import weights_kind
    from mobilenet.paper.report import ReportSettings, write_report
    from mobilenet.registry import load_deployed
    from mobilenet.utils.outputs import check_folder

    check_folder(args.out)
    if args.out.is_dir() and any(args.out.iterdir()) and not args.force:
        raise ValueError(f"--out {args.out} holds files: pass another --out, or --force to write the report over them")
    evaluate, note = None, ""
    if (args.weights is None) != (args.images is None):
        raise ValueError("--weights and --images go together: the published weights and the labelled images to score")
    if args.weights is not None:
        kind = weights_kind(str(args.weights))
        if "class_index" not in {option.name for option in kind.eval_options}:
            raise ValueError(f"{args.weights} holds a {kind.name} model: Table 4 scores a classifier's top-1")

        def evaluate() -> float:
            def load(images: int) -> object:
                return load_deployed(args.weights, images=images)

            return kind.call("evaluate", load, args.images, progress=True, class_index=args.class_index).metrics["top1"]

        note = f"`{args.weights.name}` on `{args.images}`"
    settings = ReportSettings(args.out, args.quick, args.ablation, evaluate, note)
    path, sections = write_report(settings)
    for section in sections:
        print(f"{section.verdict:>24}  {section.title}")
    print(f"report: {path}")
    return 0
