"""Capabilities that plug into the training loop without threading through it: what a hook can do, and which
hooks a config turns on.

The loop (:mod:`mobilenet.training.trainer`) is plain: it calls each hook at its point and knows nothing of what
the hook does. Quantization-aware training (:mod:`mobilenet.training.qat`) is one: it checks the task can
calibrate, swaps in a fake-quantized model, keeps its quantizers' ranges out of weight decay, saves the float
weights without them, and at the end writes and scores the int8 model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

    from mobilenet.training.config import TrainConfig
    from mobilenet.training.task import Evaluation, Task, TrainingData


@dataclass(frozen=True)
class Extra:
    """A result a hook adds at the end of a run, beside the validation scores: in the summary and the result."""

    evaluation: Evaluation  # its scores on the validation set
    summary: dict[str, Any]  # what summary.json records of it besides the scores (files written, say)
    description: str  # what it is, for people: "int8 (OpenVINO IR runs/x/int8.xml)"


class Hook:
    """A capability of a run. Every method does nothing unless a hook overrides it."""

    def check(self, config: TrainConfig, task: Task, resuming: bool) -> None:
        """Refuse, before anything is read or written, what this capability cannot do with ``config`` and ``task``."""

    def prepare(self, model: nn.Module, task: Task, data: TrainingData, run_dir: Path | None, resume: Path | None,
                ) -> nn.Module:  # fmt: skip
        """The model to train, once the task has prepared it and its data (``run_dir``: where to write, rank 0)."""
        return model

    def no_weight_decay(self, name: str) -> bool:
        """Whether a parameter of the prepared model (by name) is the hook's own and takes no weight decay."""
        return False

    def plain(self, model: nn.Module) -> nn.Module:
        """The model as it is saved and shipped, without what the hook added for training."""
        return model

    def finish(self, model: nn.Module, task: Task, data: TrainingData, run_dir: Path, rank: int,
               micro_batch: int, workers: int) -> dict[str, Extra]:  # fmt: skip
        """Results of its own after the last epoch, by name (``model``: the final one, EMA included)."""
        return {}


def hooks_for(config: TrainConfig) -> list[Hook]:
    """The hooks that ``config`` turns on."""
    hooks: list[Hook] = []
    if config.qat:
        from mobilenet.training.qat import QuantizationAware

        hooks.append(QuantizationAware())
    return hooks
