"""``mobilenet weights``: the published weights the library knows by name, and whether each is cached here."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict


def cmd_weights(args: argparse.Namespace) -> int:
    from mobilenet.weights.download import cache_dir
    from mobilenet.weights.published import DEFAULTS, PUBLISHED

    defaults = set(DEFAULTS.values())
    if args.json:
        rows = [
            asdict(entry) | {"default": entry.name in defaults, "cached": (cache_dir() / entry.filename).exists()}
            for entry in PUBLISHED
        ]
        print(json.dumps(rows))
        return 0
    print(f"cache: {cache_dir()} (set MOBILENET_CACHE to move it); * marks the DEFAULT of its model")
    print(f"{'name':<44} {'task':<14} {'size':>7} {'top-1 pub.':>10}  {'measured here':<32} licence")
    for entry in PUBLISHED:
        size = "" if entry.size is None else f"{entry.size / 1e6:.1f}MB"
        top1 = "" if entry.top1_published is None else f"{entry.top1_published:g}"
        mark = "*" if entry.name in defaults else " "
        cached = " (cached)" if (cache_dir() / entry.filename).exists() else ""
        print(
            f"{mark}{entry.name:<43} {entry.task:<14} {size:>7} {top1:>10}  {entry.top1_measured or '':<32} "
            f"{entry.license}{cached}"
        )
    return 0


def add_parsers(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "weights", help="the published weights known by name (create_model(name, weights=...)), and which are cached"
    )
    p.add_argument("--json", action="store_true", help="print the table as JSON (URLs, sha256, preprocessing)")
    p.set_defaults(func=cmd_weights)
