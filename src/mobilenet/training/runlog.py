"""A run directory's record: config.json, metrics.csv, TensorBoard, best/last weights, curves, summary."""

from __future__ import annotations

import csv
import io
import json
import time
import warnings
from pathlib import Path
from typing import Any

import torch.distributed as dist
from torch import nn

from mobilenet.training.config import TrainConfig
from mobilenet.training.curves import plot_curves
from mobilenet.training.qat import INT8_IR
from mobilenet.training.task import Evaluation, TrainingData
from mobilenet.utils.files import atomic_text
from mobilenet.weights.format import save_weights


def run_dir_for(config: TrainConfig) -> Path:
    name = config.out or f"runs/{config.recipe}-{time.strftime('%Y%m%d-%H%M%S')}"
    if dist.is_initialized():  # every process must write to (and name) the same directory
        names = [name]
        dist.broadcast_object_list(names, src=0)
        name = names[0]
    return Path(name)


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
        resuming: bool = False,
    ) -> None:
        self.config, self.data, self.best_metric, self.enabled = config, data, best_metric, enabled
        self.run_dir = run_dir_for(config)
        self.rows: list[dict[str, Any]] = []
        self.best = -float("inf")
        self.skipped = {"train": 0, "val": 0}  # unreadable samples, each counted once
        self.tensorboard = None
        if not enabled:
            return
        if not resuming and (self.run_dir / "last.json").exists():
            raise ValueError(
                f"{self.run_dir} already holds a run: continue it with --resume {self.run_dir}, or pick --out"
            )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_text(self.run_dir / "config.json", config.to_json())
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tensorboard = SummaryWriter(str(self.run_dir / "tensorboard"))
        except ImportError:  # TensorBoard is optional: the CSV has the same numbers
            pass

    def state(self) -> dict[str, Any]:
        return {"rows": json.dumps(self.rows), "best": self.best, "skipped": self.skipped}

    def restore(self, state: dict[str, Any]) -> None:
        self.rows, self.best, self.skipped = json.loads(state["rows"]), state["best"], state["skipped"]

    def epoch_end(
        self,
        epoch: int,
        lr: float,
        train: dict[str, float],
        skipped: int,
        val: Evaluation,
        images_per_s: float,
        model: nn.Module,
    ) -> None:
        """Record an epoch; keep the weights as last.safetensors, and as best.safetensors if they are."""
        self.skipped = {"train": max(self.skipped["train"], skipped), "val": val.skipped}
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
        if self.tensorboard is not None:
            for key, value in row.items():
                if key != "epoch":
                    self.tensorboard.add_scalar(key, value, epoch + 1)
        save_weights(model, self.run_dir / "last.safetensors")
        if improved:
            save_weights(model, self.run_dir / "best.safetensors")

    def mean_images_per_s(self) -> float:
        return sum(r["images_per_s"] for r in self.rows) / max(len(self.rows), 1)

    def finish(self, model: nn.Module, int8: Evaluation | None = None) -> None:
        """The learning curves as a PNG and a summary.json of the run (with ``int8``'s scores after qat)."""
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
        }
        if int8 is not None:
            summary["int8"] = {"ir": INT8_IR, **scores("val", int8.metrics), "val_images": int8.n}
        atomic_text(self.run_dir / "summary.json", json.dumps(summary, indent=2))
        if self.tensorboard is not None:
            self.tensorboard.close()
        if self.rows:
            try:
                plot_curves(self.rows, self.run_dir / "curves.png")
            except ImportError as error:  # matplotlib is the optional 'plots' extra
                warnings.warn(f"curves.png not drawn: {error}", stacklevel=2)
