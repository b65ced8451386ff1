"""The tasks the trainer can learn, by name, and ``train``: a run of the task its config names."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from mobilenet.classification.task import ClassificationTask
from mobilenet.training.config import TrainConfig
from mobilenet.training.task import Task
from mobilenet.training.trainer import Trainer, TrainResult

TASKS: dict[str, Callable[[], Task]] = {"classification": ClassificationTask}


def make_task(name: str) -> Task:
    """A fresh task object (one serves one run)."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}: choose one of {', '.join(TASKS)}")
    return TASKS[name]()


def trainer(config: TrainConfig, resume: str | Path | None = None, progress: bool = True) -> Trainer:
    """The :class:`Trainer` of ``config``'s task, or of the run in ``resume``."""
    if resume is not None:
        config = replace(TrainConfig.from_json(Path(resume) / "config.json"), out=str(resume))
    return Trainer(config, make_task(config.task), resume, progress)


def train(config: TrainConfig, resume: str | Path | None = None, progress: bool = True) -> TrainResult:
    """Train as ``config`` says (its ``task``), or continue the run in ``resume`` exactly where it stopped."""
    return trainer(config, resume, progress).run()
