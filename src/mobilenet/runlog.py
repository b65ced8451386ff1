"""A run directory's record: config.json, metrics.csv, TensorBoard, best/last weights, curves, summary."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from mobilenet.evaluate import EvalResult
from mobilenet.model import MobileNet
from mobilenet.plots import plot_curves
from mobilenet.qat import INT8_IR
from mobilenet.recipes import TrainConfig
from mobilenet.setup import TrainingData
from mobilenet.weights import atomic_write, save_weights

COLUMNS = ["epoch", "lr", "train_loss", "train_top1", "val_loss", "val_top1", "val_top5", "images_per_s", "skipped"]


def _run_dir(config: TrainConfig) -> Path:
    name = config.out or f"runs/{config.recipe}-{time.strftime('%Y%m%d-%H%M%S')}"
    if dist.is_initialized():  # every process must write to (and name) the same directory
        names = [name]
        dist.broadcast_object_list(names, src=0)
        name = names[0]
    return Path(name)


class RunLog:
    """Everything a run writes; only the process with ``enabled`` (rank 0) touches the disk."""

    def __init__(self, config: TrainConfig, data: TrainingData, enabled: bool = True, resuming: bool = False) -> None:
        self.config, self.data, self.enabled = config, data, enabled
        self.run_dir = _run_dir(config)
        self.rows: list[dict[str, Any]] = []
        self.best_top1 = -1.0
        self.skipped = {"train": 0, "val": 0}  # unreadable images, each counted once
        self._tensorboard = None
        if not enabled:
            return
        if not resuming and (self.run_dir / "last.json").exists():
            raise ValueError(
                f"{self.run_dir} already holds a run: continue it with --resume {self.run_dir}, or pick --out"
            )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.run_dir / "config.json", lambda tmp: Path(tmp).write_text(config.to_json()))
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._tensorboard = SummaryWriter(str(self.run_dir / "tensorboard"))
        except ImportError:  # TensorBoard is optional: the CSV has the same numbers
            pass

    def state(self) -> dict[str, Any]:
        return {"rows": json.dumps(self.rows), "best_top1": self.best_top1, "skipped": self.skipped}

    def restore(self, state: dict[str, Any]) -> None:
        self.rows, self.best_top1, self.skipped = json.loads(state["rows"]), state["best_top1"], state["skipped"]

    def epoch_end(
        self, epoch: int, lr: float, totals: torch.Tensor, val: EvalResult, images_per_s: float, model: MobileNet
    ) -> None:
        """Record an epoch; keep the weights as last.safetensors, and as best.safetensors if they are."""
        loss_sum, correct, seen, skipped = totals.tolist()
        self.skipped = {"train": max(self.skipped["train"], int(skipped)), "val": val.skipped}
        row = {
            "epoch": epoch + 1,
            "lr": lr,
            "train_loss": loss_sum / max(seen, 1),
            "train_top1": correct / max(seen, 1),
            "val_loss": val.loss,
            "val_top1": val.top1,
            "val_top5": val.top5,
            "images_per_s": images_per_s,
            "skipped": int(skipped),
        }
        self.rows.append(row)
        improved = val.top1 > self.best_top1
        self.best_top1 = max(self.best_top1, val.top1)
        if not self.enabled:
            return
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, COLUMNS)
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write(self.run_dir / "metrics.csv", lambda tmp: Path(tmp).write_text(buffer.getvalue()))
        if self._tensorboard is not None:
            for key, value in row.items():
                if key != "epoch":
                    self._tensorboard.add_scalar(key, value, epoch + 1)
        save_weights(model, self.run_dir / "last.safetensors")
        if improved:
            save_weights(model, self.run_dir / "best.safetensors")

    def mean_images_per_s(self) -> float:
        return sum(r["images_per_s"] for r in self.rows) / max(len(self.rows), 1)

    def finish(self, model: MobileNet, int8: EvalResult | None = None) -> None:
        """The learning curves as a PNG and a summary.json of the run (with ``int8``'s scores after qat)."""
        if not self.enabled:
            return
        summary = {
            "data": self.data.source,
            "classes": len(self.data.classes),
            "train_images": len(self.data.train),
            "val_images": len(self.data.val),
            "epochs": len(self.rows),
            "best_val_top1": self.best_top1,
            "final": self.rows[-1] if self.rows else None,
            "skipped_images": self.skipped,
            "model": model.config.to_dict(),
        }
        if int8 is not None:
            summary["int8"] = {"ir": INT8_IR, "val_top1": int8.top1, "val_top5": int8.top5, "val_images": int8.n}
        atomic_write(self.run_dir / "summary.json", lambda tmp: Path(tmp).write_text(json.dumps(summary, indent=2)))
        if self._tensorboard is not None:
            self._tensorboard.close()
        plot_curves(self.rows, self.run_dir / "curves.png")
