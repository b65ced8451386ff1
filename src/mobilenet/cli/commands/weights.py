"""``mobilenet weights``: the published weights the library knows by name, of every kind, and whether each is cached
here."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

HELP = "the published weights known by name (create_model(name, weights=...)), and which are cached"
DESCRIPTION = (
    "The published weights mobilenet knows by name, for every kind of model: where each comes from, its licence, "
    "its published and measured accuracy, and whether it is in the cache. --weights NAME takes any of them."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the table as JSON (URLs, sha256, preprocessing)")


def run(args: argparse.Namespace) -> int:
    from mobilenet.registry import kind_of_model, published_weights
    from mobilenet.weights.download import cache_dir

    entries = published_weights()
    if args.json:
        rows = [
            asdict(entry) | {"task": kind_of_model(entry.model).name, "cached": (cache_dir() / entry.filename).exists()}
            for entry in entries
        ]
        print(json.dumps(rows))
        return 0
    print(f"cache: {cache_dir()} (set MOBILENET_CACHE to move it); * marks the DEFAULT of its model")
    measured = max([len("measured here"), *(len(entry.top1_measured or "") for entry in entries)])  # one column
    print(f"{'name':<44} {'task':<14} {'size':>7} {'top-1 pub.':>10}  {'measured here':<{measured}} licence")
    for entry in entries:
        size = "" if entry.size is None else f"{entry.size / 1e6:.1f}MB"
        top1 = "" if entry.top1_published is None else f"{entry.top1_published:g}"
        mark = "*" if entry.default else " "
        cached = " (cached)" if (cache_dir() / entry.filename).exists() else ""
        print(
            f"{mark}{entry.name:<43} {kind_of_model(entry.model).name:<14} {size:>7} {top1:>10}  "
            f"{entry.top1_measured or '':<{measured}} {entry.license}{cached}"
        )
    return 0
