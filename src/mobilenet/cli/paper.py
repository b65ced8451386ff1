"""``mobilenet paper``: the MobileNetV2 paper's tables and figures beside ours, as one Markdown report."""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_paper(args: argparse.Namespace) -> int:
    from mobilenet.paper.report import ReportSettings, write_report

    evaluate, note = None, ""
    if (args.weights is None) != (args.images is None):
        raise ValueError("--weights and --images go together: the published weights and the labelled images to score")
    if args.weights is not None:
        from mobilenet.classification.evaluate import evaluate_folder

        def evaluate() -> float:
            return evaluate_folder(args.weights, args.images, args.class_index, progress=True).top1

        note = f"`{args.weights.name}` on `{args.images}`"
    settings = ReportSettings(args.out, args.quick, args.ablation, evaluate, note)
    path, sections = write_report(settings)
    for section in sections:
        print(f"{section.verdict:>24}  {section.title}")
    print(f"report: {path}")
    return 0


def add_parsers(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("paper", help="the paper's tables and figures beside ours, measured here (Markdown)")
    p.add_argument("--out", type=Path, default=Path("mobilenet-paper"), help="folder for report.md and its PNGs")
    p.add_argument("--quick", action="store_true", help="fewer seeds and timings: a few minutes on a laptop")
    p.add_argument("--ablation", type=Path, help="a finished Figure 6 sweep (python benchmarks/figure6.py --out DIR)")
    p.add_argument("--weights", type=Path, help="published weights to score for Table 4 (with --images)")
    p.add_argument("--images", type=Path, help="labelled images, one folder per class (ImageNet synsets)")
    p.add_argument("--class-index", type=Path, help="synset -> index JSON (imagenet_class_index.json)")
    p.set_defaults(func=cmd_paper)
