"""A run directory's record: config.json, metrics.csv, trackers (TensorBoard, MLflow), weights, curves, summary."""

from __future__ import annotations

import csv
import io
import json
import shutil
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from mobilenet.training.checkpoint import POINTER, remove_debris
from mobilenet.training.config import TrainConfig
from mobilenet.training.curves import plot_curves
from mobilenet.training.hooks import Extra
from mobilenet.training.task import Evaluation, TrainingData
from mobilenet.training.trackers import Tracker, open_trackers
from mobilenet.utils.files import atomic_text
from mobilenet.utils.machine import cpu_name
from mobilenet.weights.format import save_weights

SUMMARY = "summary.json"  # written last: a run is finished once it exists


def create_run_dir(config: TrainConfig) -> Path:
    """A new run directory, created exclusively: ``--out`` if given, else ``runs/<recipe>-<time>[-N]``.

    Two runs started in the same second get two directories; an existing ``--out`` is never reused
    (only ``--resume`` continues a run).
    """
    if config.out is not None:
        path = Path(config.out)
        if (path / POINTER).exists():
            raise ValueError(f"{path} already holds a run: continue it with --resume {path}, or pick another --out")
        # Even an empty folder is the user's: a run that fails early removes the folder it made, never theirs.
        inside = next(parent for parent in path.absolute().parents if parent.exists())
        if not inside.is_dir():
            raise ValueError(f"--out {path} is inside {inside}, a file: pick a folder's path")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.mkdir()
        except FileExistsError:
            raise ValueError(f"{path} already exists: pick another --out (a new folder), or remove it") from None
        return path
    base = f"runs/{config.recipe}-{time.strftime('%Y%m%d-%H%M%S')}"
    Path("runs").mkdir(exist_ok=True)
    for attempt in range(1, 1000):
        path = Path(base if attempt == 1 else f"{base}-{attempt}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a new run directory beside {base}: pass --out")


def shared_run_dir(config: TrainConfig, enabled: bool, resume: Path | None) -> Path:
    """The run directory, made by the writing process (rank 0) and told to every other."""
    path = resume if resume is not None else create_run_dir(config) if enabled else None
    if dist.is_initialized():  # every process must write to (and name) the same directory
        names = [str(path) if path is not None else None]
        dist.broadcast_object_list(names, src=0)
        path = Path(names[0])
    return path  # type: ignore[return-value]


def scores(prefix: str, values: dict[str, float]) -> dict[str, float]:
    return {f"{prefix}_{key}": value for key, value in values.items()}


class RunLog:
    """Everything a run writes; only the process with ``enabled`` (rank 0) touches the disk.

    ``best_metric`` names the validation score (higher is better) that decides best.safetensors.
    """

    def __init__(
        self,
        config: TrainConfig,
        data: TrainingData,
        best_metric: str,
        enabled: bool = True,
        resume: Path | None = None,
    ) -> None:
        self.config, self.data, self.best_metric, self.enabled = config, data, best_metric, enabled
        self.run_dir = shared_run_dir(config, enabled, resume)
        self.created = resume is None  # a new directory: removed again if the run fails before its first checkpoint
        self.rows: list[dict[str, Any]] = []
        self.best = -float("inf")
        self.skipped = {"train": 0, "val": 0}  # unreadable samples, each counted once
        self.stopped: dict[str, int] = {}  # layers whose output stopped depending on the input: the epoch they did
        self.trackers: list[Tracker] = []
        if not enabled:
            return
        if resume is None:  # a resumed run writes only once its checkpoint has loaded (see ``resumed``)
            atomic_text(self.run_dir / "config.json", config.to_json())
            self.trackers = open_trackers(config, self.run_dir)

    def resumed(self) -> None:
        """After a checkpoint loaded: remove what interrupted writes left, record the config (extended epochs), and
        open the trackers (TensorBoard writes a file at once: a damaged run that is refused gets nothing new)."""
        if self.enabled:
            remove_debris(self.run_dir)
            atomic_text(self.run_dir / "config.json", self.config.to_json())
            self.trackers = open_trackers(self.config, self.run_dir, self.rows)

    def discard_if_empty(self) -> None:
        """Remove a directory this run created if it never wrote a checkpoint: nothing half-made is left."""
        if self.enabled and self.created and not (self.run_dir / POINTER).exists():
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def state(self) -> dict[str, Any]:
        return {"rows": json.dumps(self.rows), "best": self.best, "skipped": self.skipped, "stopped": self.stopped}

    def restore(self, state: dict[str, Any]) -> None:
        self.rows, self.best, self.skipped = json.loads(state["rows"]), state["best"], state["skipped"]
        self.stopped = state.get("stopped", {})  # absent from checkpoints written before it was counted

    def epoch_end(
        self,
        epoch: int,
        lr: float,
        train: dict[str, float],
        skipped: int,
        val: Evaluation,
        images_per_s: float,
        model: nn.Module,
        stopped: Sequence[str],
    ) -> None:
        """Record an epoch; keep the weights as last.safetensors, and as best.safetensors if they are. ``stopped``:
        the layers whose every channel gave one output on all the validation images (said once per layer)."""
        self.skipped = {"train": max(self.skipped["train"], skipped), "val": val.skipped}
        new = [layer for layer in stopped if layer not in self.stopped]
        if new and self.enabled:  # the first is the cause: the layers after it see one input and follow it
            after = f" (and {len(new) - 1} layers after it)" if len(new) > 1 else ""
            warnings.warn(
                f"{self.run_dir}: after epoch {epoch + 1}, every channel of {new[0]}{after} gives one value on every "
                "validation image: its output no longer depends on the image, and nothing after it learns from it "
                "(an activation pushed to its flat end gets no gradient back; if it was a pretrained layer, train "
                "it slower: --backbone-lr-mult, --lr)",
                stacklevel=2,
            )
        self.stopped |= dict.fromkeys(new, epoch + 1)
        row = {"epoch": epoch + 1, "lr": lr, **scores("train", train), **scores("val", val.metrics)}
        row |= {"images_per_s": images_per_s, "skipped": skipped}
        self.rows.append(row)
        improved = val.metrics[self.best_metric] > self.best
        self.best = max(self.best, val.metrics[self.best_metric])
        if not self.enabled:
            return
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, list(row))
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_text(self.run_dir / "metrics.csv", buffer.getvalue())
        for tracker in self.trackers:
            tracker.log({key: value for key, value in row.items() if key != "epoch"}, epoch + 1)
        save_weights(model, self.run_dir / "last.safetensors")
        if improved:
            save_weights(model, self.run_dir / "best.safetensors")

    def mean_images_per_s(self) -> float:
        return sum(r["images_per_s"] for r in self.rows) / max(len(self.rows), 1)

    def finish(self, model: nn.Module, norms: dict[str, int], extras: dict[str, Extra] | None = None) -> None:
        """The learning curves as a PNG, then a summary.json of the run (with how many BatchNorms kept and learned
        their statistics, ``norms``, and the hooks' ``extras``): a run killed before its summary is written resumes
        to write both."""
        if not self.enabled:
            return
        summary = {
            "task": self.config.task,
            "data": self.data.source,
            "classes": len(self.data.classes),
            "train_images": len(self.data.train),
            "val_images": len(self.data.val),
            "epochs": len(self.rows),
            f"best_val_{self.best_metric}": self.best,
            "final": self.rows[-1] if self.rows else None,
            "skipped_images": self.skipped,
            "model": model.config.to_dict(),
            "batchnorm_statistics": norms,
            "stopped_layers": self.stopped,  # layer: the epoch after which its output was the same for every image
            "class_rows": self.data.class_rows,  # a new last layer's start, class by class (none: no new layer)
            # What the figures depend on besides the config (which records the thread count).
            "machine": {"cpu": cpu_name(), "threads": self.config.threads, "torch": torch.__version__},
        }
        for name, extra in (extras or {}).items():
            evaluation = extra.evaluation
            summary[name] = {**extra.summary, **scores("val", evaluation.metrics), "val_images": evaluation.n}
        for tracker in self.trackers:
            tracker.close()
        if self.rows:
            try:
                plot_curves(self.rows, self.run_dir / "curves.png")
            except ImportError as error:  # matplotlib is the optional 'plots' extra
                warnings.warn(f"curves.png not drawn: {error}", stacklevel=2)
        atomic_text(self.run_dir / SUMMARY, json.dumps(summary, indent=2))  # last: the run is finished
