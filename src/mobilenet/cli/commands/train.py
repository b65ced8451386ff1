"""``mobilenet train``: every field of the training config is a flag, the task's own settings too; the recipe fills
in the rest."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import types
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mobilenet.kinds import ModelKind
    from mobilenet.training.config import TrainConfig
    from mobilenet.training.task import Evaluation
    from mobilenet.training.trainer import TrainResult

HELP = "train or fine-tune any task (no --data: the embedded digits set, about two minutes)"
DESCRIPTION = (
    "Train or fine-tune a model of any task. Each flag sets one setting of the run; an absent flag keeps the "
    "recipe's value. The settings every run has come first, then each task's own, which only that task takes. "
    "--recipe starts from a named recipe (each task has a default one; the first task's trains on the embedded "
    "digits when --data is not given). Optional settings take 'none'."
)


def setting_fields(record: type) -> dict[str, tuple[Any, str]]:
    """The fields of a settings record: their types and what each does."""
    hints = typing.get_type_hints(record)
    return {f.name: (hints[f.name], f.metadata.get("help", "")) for f in dataclasses.fields(record)}


def common_fields() -> dict[str, tuple[Any, str]]:
    from mobilenet.training.config import TrainConfig

    fields = setting_fields(TrainConfig)
    return {name: value for name, value in fields.items() if name not in ("recipe", "task", "options")}


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The recipe named by ``--recipe`` (or the task's default one) with each flag given (and only those) applied."""
    from mobilenet.registry import kinds
    from mobilenet.tasks import make_config

    names = {*common_fields(), "task", *(name for kind in kinds() for name in setting_fields(kind.settings))}
    given = {name: getattr(args, name) for name in names if hasattr(args, name)}
    return make_config(getattr(args, "recipe", None), **given)


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

    figures = {
        "run_dir": str(result.run_dir),
        "epochs": result.epochs,
        "steps": result.steps,
        "val": scored(result.val),
        "best_metric": result.best_metric,
        "best": result.best,
        "wall_seconds": result.wall_seconds,
        "train_images_per_s": result.train_images_per_s,
        "skipped_images": result.skipped_images,
    }
    return figures | {name: scored(extra.evaluation) for name, extra in result.extras.items()}


def run(args: argparse.Namespace) -> int:
    from mobilenet.tasks import train
    from mobilenet.training.config import resume_config

    if args.resume is not None:
        given = {name: value for name, value in vars(args).items() if name not in NOT_SETTINGS}
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
        for extra in result.extras.values():
            print(f"{extra.description}: validation {scores(extra.evaluation.metrics)}")
    return 0


# What the parser holds besides settings.
NOT_SETTINGS = ("command", "debug", "func", "resume", "json")


def without_none(kind: Any) -> tuple[Any, bool]:
    """A field's type without its ``| None``, and whether it had one."""
    members = typing.get_args(kind)
    if typing.get_origin(kind) in (typing.Union, types.UnionType) and type(None) in members:
        (base,) = (member for member in members if member is not type(None))  # every such field is X | None
        return base, True
    return kind, False


METAVARS = {bool: "{true,false}", int: "INT", float: "FLOAT", str: "TEXT"}


def field_option(kind: Any) -> dict[str, Any]:
    """``add_argument``'s type, and choices or metavar, for a settings field of type ``kind``.

    Bools read as true/false, Literals are choices, and 'none' is an optional field's None, except where
    "none" is one of the Literal's own values (--shortcut none: the no-residual ablation).
    """
    base, optional = without_none(kind)
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


def shown(value: Any) -> str:
    """A value as the command line spells it."""
    if value is None:
        return "none"
    return str(value).lower() if isinstance(value, bool) else str(value)


def default_text(name: str, kinds: list[ModelKind]) -> str:
    """The value a flag takes when it is absent: each task's default recipe's (a task's own setting: its tasks'),
    and the embedded demo's where it differs."""

    def value_of(recipe: TrainConfig, kind: ModelKind) -> Any:
        return recipe.options.get(name, getattr(kind.settings(), name)) if name in setting_fields(kind.settings) \
            else getattr(recipe, name)  # fmt: skip

    values: dict[str, Any] = {}
    for kind in kinds:
        values[kind.default_recipe] = value_of(kind.recipes[kind.default_recipe], kind)
        if kind.demo_recipe is not None:
            values["the embedded digits"] = value_of(kind.demo_recipe, kind)
    first = next(iter(values.values()))
    differing: dict[str, list[str]] = {}  # each other value once, with every recipe that has it
    for recipe, value in list(values.items())[1:]:
        if value != first:
            differing.setdefault(shown(value), []).append(recipe)
    others = [f"{value} with {', '.join(recipes)}" for value, recipes in differing.items()]
    return "; ".join([f"default: {shown(first)}", *others]).replace("%", "%%")  # argparse formats help with %


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mobilenet.registry import kinds
    from mobilenet.tasks import recipes
    from mobilenet.training.config import RESUMABLE_CHANGES, flag

    resumable = ", ".join(flag(name) for name in RESUMABLE_CHANGES)
    known = kinds()
    parser.add_argument("--recipe", default=argparse.SUPPRESS, choices=list(recipes()),
                        help="named recipe to start from (default: the task's own: "
                        f"{', '.join(f'{kind.name} {kind.default_recipe}' for kind in known)})")  # fmt: skip
    parser.add_argument("--task", default=argparse.SUPPRESS, choices=[kind.name for kind in known],
                        help=f"what is learned (default: the recipe's task, else {known[0].name})")  # fmt: skip
    parser.add_argument("--resume", type=Path, metavar="RUN_DIR",
                        help=f"continue this run exactly where it stopped, with its own config (only {resumable} "
                        "may change)")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the run's figures as one JSON object at the end")
    common = parser.add_argument_group("settings of every task")
    for name, (kind, help) in common_fields().items():
        add_setting(common, name, kind, help, default_text(name, known))
    owners: dict[str, list[ModelKind]] = {}
    for kind in known:
        for name in setting_fields(kind.settings):
            owners.setdefault(name, []).append(kind)
    groups: dict[tuple[str, ...], Any] = {}  # argument groups, by the tasks that take their settings
    for name, takers in owners.items():
        key = tuple(kind.name for kind in takers)
        if key not in groups:
            groups[key] = parser.add_argument_group(f"settings of the {' and '.join(key)} task{'s' * (len(key) > 1)}")
        field_type, _ = setting_fields(takers[0].settings)[name]
        helps = {kind.name: setting_fields(kind.settings)[name][1] for kind in takers}
        help = (
            next(iter(helps.values()))
            if len(set(helps.values())) == 1
            else "; ".join(f"{task}: {text}" for task, text in helps.items())
        )
        add_setting(groups[key], name, field_type, help, default_text(name, takers))


def add_setting(group: Any, name: str, kind: Any, help: str, default: str) -> None:
    group.add_argument(
        f"--{name.replace('_', '-')}",
        dest=name,
        default=argparse.SUPPRESS,  # absent flags keep the recipe's value; 'none' is a real override
        help=f"{help} ({default})" if help else default,
        **field_option(kind),
    )
