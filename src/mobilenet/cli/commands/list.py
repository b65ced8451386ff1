"""``mobilenet list``: the registered model names of every kind, with their architecture and width."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

HELP = "registered model names"
DESCRIPTION = "The registered model names of every kind of model (a shell-style pattern picks some)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pattern", nargs="?", default="*", help="shell-style pattern the names must match")
    parser.add_argument("--json", action="store_true", help="a JSON list: each name with its task and model config")


def run(args: argparse.Namespace) -> int:
    from fnmatch import fnmatch

    from mobilenet.registry import kinds

    found = sorted(
        (name, kind, config) for kind in kinds() for name, config in kind.models.items() if fnmatch(name, args.pattern)
    )  # fmt: skip
    if args.json:
        print(json.dumps([{"name": name, "task": kind.name, **asdict(config)} for name, kind, config in found]))
        return 0
    for name, kind, config in found:
        print(f"{name:<28} {kind.name:<15} {config.arch} width {config.width_mult:g}")
    return 0
