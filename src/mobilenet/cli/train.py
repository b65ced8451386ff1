"""``mobilenet train``: every field of the training config is a flag; the recipe fills in the rest."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import types
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mobilenet.training.config import RESUMABLE_CHANGES, TrainConfig, resume_config
from mobilenet.training.recipes import EMBEDDED_DEFAULT, RECIPES, make_config

if TYPE_CHECKING:
    from mobilenet.training.task import Evaluation
    from mobilenet.training.trainer import TrainResult


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The recipe named by ``--recipe`` with each flag given on the command line (and only those) applied."""
    given = {name: getattr(args, name) for name in _train_fields() if hasattr(args, name)}
    return make_config(getattr(args, "recipe", "modern"), **given)


def scores(metrics: dict[str, float]) -> str:
    """Validation scores as people read them: losses as numbers, the rest (fractions) as percentages."""
    return " ".join(
        f"{name} {value:.4g}" if "loss" in name else f"{name} {value:.1%}" for name, value in metrics.items()
    )


def result_dict(result: TrainResult) -> dict[str, Any]:
    """What ``mobilenet train --json`` prints: the run's figures, without the model."""

    def scored(evaluation: Evaluation | None) -> dict[str, Any] | None:
        if evaluation is None:
            return None
        return {"metrics": evaluation.metrics, "n": evaluation.n, "skipped": evaluation.skipped}

    return {
        "run_dir": str(result.run_dir),
        "epochs": result.epochs,
        "steps": result.steps,
        "val": scored(result.val),
        "best_metric": result.best_metric,
        "best": result.best,
        "wall_seconds": result.wall_seconds,
        "train_images_per_s": result.train_images_per_s,
        "skipped_images": result.skipped_images,
        "int8": scored(result.int8),
    }


def cmd_train(args: argparse.Namespace) -> int:
    from mobilenet.tasks import train
    from mobilenet.training.qat import INT8_IR

    if args.resume is not None:
        given = {name: getattr(args, name) for name in ("recipe", *_train_fields()) if hasattr(args, name)}
        config = resume_config(args.resume, **given)
    else:
        config = train_config(args)
    result = train(config, resume=args.resume)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # under torchrun, the first process speaks for the run
    if args.json:
        print(json.dumps(result_dict(result)))
        return 0
    if result.val is not None:
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


def _without_none(kind: Any) -> tuple[Any, bool]:
    """A field's type without its ``| None``, and whether it had one."""
    members = typing.get_args(kind)
    if typing.get_origin(kind) in (typing.Union, types.UnionType) and type(None) in members:
        (base,) = (member for member in members if member is not type(None))  # every such field is X | None
        return base, True
    return kind, False


METAVARS = {bool: "{true,false}", int: "INT", float: "FLOAT", str: "TEXT"}


def _field_option(kind: Any) -> dict[str, Any]:
    """``add_argument``'s type, and choices or metavar, for a config field of type ``kind``.

    Bools read as true/false, Literals are choices, and 'none' is an optional field's None, except where
    "none" is one of the Literal's own values (--shortcut none: the no-residual ablation).
    """
    base, optional = _without_none(kind)
    values = typing.get_args(base) if typing.get_origin(base) is typing.Literal else ()
    none_is_unset = optional and "none" not in values
    convert = type(values[0]) if values else base

    def parse(text: str) -> Any:
        if none_is_unset and text.lower() == "none":
            return None
        if convert is bool:
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
            return text.lower() in ("true", "1", "yes")
        return convert(text)

    parse.__name__ = convert.__name__  # argparse's error names it: "invalid float value: 'x'"
    if values:  # argparse checks the parsed value, so None joins the choices where 'none' means it
        return {"type": parse, "choices": [*values, *([None] if none_is_unset else [])]}
    return {"type": parse, "metavar": METAVARS.get(convert, "VALUE")}


# What an unset (None) field means, where "none" alone would not say.
UNSET_MEANS = {
    "data": "the embedded digits",
    "val_data": "--data's val/ folder, else --val-fraction of --data",
    "model": "the --weights file's, else mobilenet_v2_100 (segmentation: deeplabv3_mobilenet_v2, detection: "
    "ssdlite_mobilenet_v2)",
    "width_mult": "the model name's",
    "input_size": "the --weights file's, else 224 (segmentation: the training crop, 513; detection: 320)",
    "small_input": "the --weights file's, else false",
    "linear_bottleneck": "the --weights file's, else true",
    "shortcut": "the --weights file's, else bottleneck",
    "weights": "none (random initialization)",
    "lr_batch": "none (--lr unscaled)",
    "ema_decay": "none (no EMA)",
    "out": "runs/<recipe>-<time>",
}


def _shown(name: str, value: Any) -> str:
    """A field's value as the command line spells it."""
    if value is None:
        return UNSET_MEANS.get(name, "none")
    return str(value).lower() if isinstance(value, bool) else str(value)


def _default_help(name: str) -> str:
    """The value a field takes when its flag is absent: the modern recipe's, and the embedded default's if another."""
    modern, embedded = getattr(RECIPES["modern"], name), getattr(EMBEDDED_DEFAULT, name)
    text = f"default: {_shown(name, modern)}"
    if embedded != modern:
        text += f"; {_shown(name, embedded)} on the embedded digits"
    return text.replace("%", "%%")  # argparse formats help with %


def add_parsers(commands: argparse._SubParsersAction) -> None:
    resumable = ", ".join(f"--{name.replace('_', '-')}" for name in RESUMABLE_CHANGES)
    p = commands.add_parser(
        "train",
        help="train or fine-tune (no --data: the embedded digits set, ~2 minutes)",
        description="Each flag sets one field of the training config; an absent flag keeps the recipe's value. "
        "The defaults shown are the modern recipe's, which trains on the embedded digits when --data is not "
        "given; --recipe starts from another. Optional fields take 'none'.",
    )
    p.add_argument("--recipe", default=argparse.SUPPRESS, choices=list(RECIPES),
                   help="named recipe to start from (default: modern)")  # fmt: skip
    p.add_argument("--resume", type=Path, metavar="RUN_DIR",
                   help=f"continue this run exactly where it stopped, with its own config (only {resumable} "
                   "may change)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the run's figures as one JSON object at the end")
    for name, kind in _train_fields().items():
        p.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            default=argparse.SUPPRESS,  # absent flags keep the recipe's value; 'none' is a real override
            help=_default_help(name),
            **_field_option(kind),
        )
    p.set_defaults(func=cmd_train)
