"""The tasks the trainer can learn, by name, and ``train``: a run of the task its config names."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mobilenet.classification.task import ClassificationTask
from mobilenet.detection.task import DetectionTask
from mobilenet.segmentation.task import SegmentationTask
from mobilenet.training.config import TrainConfig, resume_config
from mobilenet.training.task import Task
from mobilenet.training.trainer import Trainer, TrainResult

TASKS: dict[str, Callable[[], Task]] = {
    "classification": ClassificationTask,
    "segmentation": SegmentationTask,
    "detection": DetectionTask,
}


def make_task(name: str) -> Task:
    """A fresh task object (one serves one run)."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}: choose one of {', '.join(TASKS)}")
    return TASKS[name]()


def trainer(config: TrainConfig | None = None, resume: str | Path | None = None, progress: bool = True) -> Trainer:
    """The :class:`Trainer` of ``config``'s task; with ``resume``, of that run (``config`` defaults to its own)."""
    if resume is not None and config is None:
        config = resume_config(resume)
    if config is None:
        raise ValueError("pass a config (make_config(...)) or a run directory to resume")
    return Trainer(config, make_task(config.task), resume, progress)


def train(config: TrainConfig | None = None, resume: str | Path | None = None, progress: bool = True) -> TrainResult:
    """Train as ``config`` says (its ``task``), or continue the run in ``resume`` exactly where it stopped."""
    return trainer(config, resume, progress).run()
