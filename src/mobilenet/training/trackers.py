"""Experiment trackers beside metrics.csv: TensorBoard (when installed) and MLflow (when ``mlflow_uri`` is set).

Each gets the run's settings once and every epoch's row; the CSV in the run directory stays the record of
truth. A resumed run continues the same MLflow run (its id is kept in the run directory).
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Protocol

from mobilenet.training.config import TrainConfig
from mobilenet.utils.files import atomic_text
from mobilenet.utils.optional import require

MLFLOW_RUN_ID = "mlflow_run_id"


class Tracker(Protocol):
    def log(self, row: dict[str, float], step: int) -> None: ...

    def close(self) -> None: ...


class TensorBoardTracker:
    """Scalars under ``<run>/tensorboard``, in one event file however often the run was resumed: a resumed run writes
    its epochs so far (``rows``) into a new file, then removes the files before it."""

    def __init__(self, run_dir: Path, rows: Sequence[dict[str, float]] = ()) -> None:
        from torch.utils.tensorboard import SummaryWriter

        folder = run_dir / "tensorboard"
        before = set(folder.glob("events.out.tfevents.*"))
        # Its own suffix: a writer opened in the same second as the last one would otherwise take its file name.
        self.writer = SummaryWriter(str(folder), filename_suffix=f".{uuid.uuid4().hex[:8]}")
        for row in rows:
            self.log({key: value for key, value in row.items() if key != "epoch"}, int(row["epoch"]))
        self.writer.flush()
        for stale in before:
            stale.unlink(missing_ok=True)

    def log(self, row: dict[str, float], step: int) -> None:
        for key, value in row.items():
            self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        self.writer.close()


class MLflowTracker:
    """One MLflow run per training run: the config as parameters, each epoch's row as metrics."""

    def __init__(self, config: TrainConfig, run_dir: Path) -> None:
        uri = str(config.mlflow_uri)
        if "://" not in uri or uri.startswith("file:"):
            # A local folder is MLflow's file store, which MLflow 3 keeps behind an opt-in: opting in is what
            # passing a folder asks for.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
            uri = Path(uri.removeprefix("file://").removeprefix("file:")).resolve().as_uri()
        self.client = require("mlflow.tracking", "mlflow").MlflowClient(uri)
        self.entities = require("mlflow.entities", "mlflow")
        id_file = run_dir / MLFLOW_RUN_ID
        if id_file.is_file():
            self.run_id = id_file.read_text().strip()
            return
        experiment = self.client.get_experiment_by_name(config.mlflow_experiment)
        experiment_id = (
            experiment.experiment_id if experiment else self.client.create_experiment(config.mlflow_experiment)
        )
        run = self.client.create_run(experiment_id, run_name=run_dir.name, tags={"run_dir": str(run_dir.resolve())})
        self.run_id = run.info.run_id
        # MLflow keeps at most 500 characters of a parameter's value.
        params = [self.entities.Param(key, str(value)[:500]) for key, value in asdict(config).items()]
        self.client.log_batch(self.run_id, params=params)
        atomic_text(id_file, self.run_id)

    def log(self, row: dict[str, float], step: int) -> None:
        stamp = int(time.time() * 1000)  # MLflow's timestamps are milliseconds
        metrics = [self.entities.Metric(key, float(value), stamp, step) for key, value in row.items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


def open_trackers(config: TrainConfig, run_dir: Path, rows: Sequence[dict[str, float]] = ()) -> list[Tracker]:
    """TensorBoard if it is installed (optional: the CSV has the same numbers); MLflow if asked for. ``rows``: the
    epochs a resumed run has done."""
    trackers: list[Tracker] = []
    with contextlib.suppress(ImportError):
        trackers.append(TensorBoardTracker(run_dir, rows))
    if config.mlflow_uri is not None:
        trackers.append(MLflowTracker(config, run_dir))
    return trackers
