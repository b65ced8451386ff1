"""``mobilenet train``: every field of the training config is a flag; the recipe fills in the rest."""

from __future__ import annotations

import argparse
import dataclasses
import os
import typing
from pathlib import Path

from mobilenet.training.config import TrainConfig, resume_config
from mobilenet.training.recipes import RECIPES, make_config


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The recipe named by ``--recipe`` with each flag given on the command line (and only those) applied."""
    given = {name: getattr(args, name) for name in _train_fields() if hasattr(args, name)}
    return make_config(getattr(args, "recipe", "modern"), **given)


def scores(metrics: dict[str, float]) -> str:
    """Validation scores as people read them: losses as numbers, the rest (fractions) as percentages."""
    return " ".join(
        f"{name} {value:.4g}" if "loss" in name else f"{name} {value:.1%}" for name, value in metrics.items()
    )


def cmd_train(args: argparse.Namespace) -> int:
    from mobilenet.tasks import train
    from mobilenet.training.qat import INT8_IR

    if args.resume is not None:
        given = {name: getattr(args, name) for name in ("recipe", *_train_fields()) if hasattr(args, name)}
        config = resume_config(args.resume, **given)
    else:
        config = train_config(args)
    result = train(config, resume=args.resume)
    if result.val is not None and int(os.environ.get("RANK", "0")) == 0:
        print(
            f"{result.run_dir}: {result.epochs} epochs in {result.wall_seconds:.0f} s, "
            f"validation {scores(result.val.metrics)} (best {scores({result.best_metric: result.best})}) "
            f"on {result.val.n} samples; {result.train_images_per_s:.0f} training samples/s; "
            f"unreadable samples skipped: {result.skipped_images}"
        )
        if result.int8 is not None:
            print(f"int8 (OpenVINO IR {result.run_dir / INT8_IR}): validation {scores(result.int8.metrics)}")
    return 0


def _train_fields() -> dict[str, type]:
    hints = typing.get_type_hints(TrainConfig)
    return {f.name: hints[f.name] for f in dataclasses.fields(TrainConfig) if f.name != "recipe"}


def _parse_value(kind: type):
    """An argparse type for a config field: bools as true/false, optionals accept 'none'."""
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    base = args[0] if args and typing.get_origin(kind) is not typing.Literal else kind
    if typing.get_origin(base) is typing.Literal:
        base = type(typing.get_args(base)[0])

    def parse(text: str):
        if text.lower() == "none" and type(None) in typing.get_args(kind):
            return None
        if base is bool:
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
            return text.lower() in ("true", "1", "yes")
        return base(text)

    return parse


def add_parsers(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("train", help="train or fine-tune (no --data: the embedded digits set, ~2 minutes)")
    p.add_argument("--recipe", default=argparse.SUPPRESS, choices=list(RECIPES),
                   help="named recipe to start from (default: modern)")  # fmt: skip
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue this run exactly where it stopped")
    for name, kind in _train_fields().items():
        p.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            type=_parse_value(kind),
            default=argparse.SUPPRESS,  # absent flags keep the recipe's value; 'none' is a real override
            metavar="VALUE",
            help=f"override the recipe's {name}",
        )
    p.set_defaults(func=cmd_train)
