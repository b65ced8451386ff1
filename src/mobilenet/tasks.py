"""Training any registered task: its recipes, a config made from one, and ``train``.

The trainer (:mod:`mobilenet.training`) knows a task only through its :class:`~mobilenet.training.task.Task`
object; this module finds that object, and the task's recipes and settings, in the registry.
"""

from __future__ import annotations

from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

from mobilenet.kinds import ModelKind
from mobilenet.registry import kind, kinds
from mobilenet.training.config import TrainConfig, flag, resume_config
from mobilenet.training.task import Task
from mobilenet.training.trainer import Trainer, TrainResult


def recipes() -> dict[str, TrainConfig]:
    """Every task's named recipes (their ``task`` says whose)."""
    return {name: recipe for candidate in kinds() for name, recipe in candidate.recipes.items()}


def split_settings(target: ModelKind, overrides: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``overrides`` as (fields of :class:`TrainConfig`, settings of ``target``'s own); anything else is refused in
    one line, naming the task whose setting it is."""
    common_names = {f.name for f in fields(TrainConfig)} - {"options"}
    own_names = {f.name for f in fields(target.settings)}
    common = {name: value for name, value in overrides.items() if name in common_names}
    own = {name: value for name, value in overrides.items() if name in own_names and name not in common_names}
    for name in sorted(set(overrides) - set(common) - set(own)):
        others = [other.name for other in kinds() if name in {f.name for f in fields(other.settings)}]
        if others:
            raise ValueError(f"{flag(name)} is a setting of the {' and '.join(others)} task: {target.name} takes none")
        raise ValueError(f"unknown training settings [{name!r}]; see `mobilenet train --help`")
    return common, own


def make_config(recipe: str | None = None, **overrides: Any) -> TrainConfig:
    """A named recipe with fields overridden: the common ones of :class:`TrainConfig` and the task's own settings.

    Args:
        recipe: a recipe of any task (``recipes()``); None: the default recipe of the task that ``task`` names
            (classification's ``modern`` without it). A recipe of another task than ``task`` lends its common
            settings, and the task takes its own settings' defaults.
        **overrides: fields of :class:`TrainConfig` (``task``, ``data``, ``lr``, ...) and of the task's settings
            record (``mixup`` for a classifier, ...). Without ``data``, a task with a demo set trains on it.

    Returns:
        The config, its ``options`` holding every setting of the task's own.
    """
    task = overrides.get("task")
    known = recipes()
    if recipe is None:
        recipe = kind(task).default_recipe
    if recipe not in known:
        raise ValueError(f"unknown recipe {recipe!r}: choose one of {', '.join(known)}")
    base = known[recipe]
    target = kind(task or base.task)
    if base.task != target.name:
        base = replace(base, task=target.name, options={})
    elif base.data is None and overrides.get("data") is None and recipe == target.default_recipe:
        base = target.demo_recipe or base
    common, own = split_settings(target, overrides)
    options = asdict(target.settings(**{**base.options, **own}))
    return replace(base, **common, options=options)


def make_task(name: str | None) -> Task:
    """A fresh task object of a registered task (one serves one run)."""
    target = kind(name)
    return target.call("task")


def trainer(config: TrainConfig | None = None, resume: str | Path | None = None, progress: bool = True) -> Trainer:
    """The :class:`Trainer` of ``config``'s task; with ``resume``, of that run (``config`` defaults to its own)."""
    if resume is not None and config is None:
        config = resume_config(resume)
    if config is None:
        raise ValueError("pass a config (make_config(...)) or a run directory to resume")
    return Trainer(config, make_task(config.task), resume, progress)


def train(config: TrainConfig | None = None, resume: str | Path | None = None, progress: bool = True) -> TrainResult:
    """Train as ``config`` says (its ``task``), or continue the run in ``resume`` exactly where it stopped.

    Args:
        config: what to train (:func:`make_config`); None with ``resume``: the run's own.
        resume: a run directory to continue from its last checkpoint, bit for bit.
        progress: show a progress bar per epoch.

    Returns:
        The trained model, its run directory and scores.
    """
    return trainer(config, resume, progress).run()
