"""The task interface: all the trainer knows of what is learned.

The trainer owns the loop and its guarantees (exact resume, torchrun, EMA, AMP, the divergence stop, its
hooks); a task owns its data, its loss and its metrics, and its own settings (a record of ``settings``'s type, read
from the config's ``options``). A task object serves one run: ``prepare`` is called once, before anything else.

The model a task prepares has ``config`` (with ``to_dict()``), ``class_names`` and ``preprocessing``
attributes, which are saved with its weights, a ``kind`` when it is not a MobileNet classifier, and can be
rebuilt from its config alone (``type(model)(model.config)``, as quantization-aware training does).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch
    from torch import nn
    from torch.utils.data import Dataset

    from mobilenet.training.config import TrainConfig


@dataclass(frozen=True)
class TrainingData:
    """A task's datasets. ``train`` is indexed by ``(index, augmentation seed)`` (see ``sampling``); an item
    that cannot be read is ``None``, and the task's ``collate`` drops and counts it."""

    train: Dataset
    val: Dataset
    classes: list[str]
    source: str  # where the data came from, for the run's summary
    # Where --weights predicted other classes: each class's start, the classes of --weights its row started from.
    class_rows: dict[str, list[str]] | None = None

    def describe_class_rows(self) -> str:
        """How a new last layer started, for the run's first line: its rows kept, merged and new ("" if none)."""
        if self.class_rows is None:
            return ""
        counts = [len(sources) for sources in self.class_rows.values()]
        kept, merged = counts.count(1), sum(count > 1 for count in counts)
        return f", the new last layer's rows {kept} kept, {merged} merged and {counts.count(0)} new"


class Evaluation(Protocol):
    """What a task's evaluation returns: named scores, and how many samples were scored and skipped."""

    @property
    def metrics(self) -> dict[str, float]: ...

    n: int
    skipped: int


class Task(Protocol):
    name: str
    settings: type  # the record of its own settings, read from ``TrainConfig.options``
    best_metric: str  # the key of ``Evaluation.metrics`` (higher is better) that picks best.safetensors
    train_stats: tuple[str, ...]  # names of the sums that ``loss`` returns, in order

    def prepare(self, config: TrainConfig, model: nn.Module | None = None) -> tuple[nn.Module, TrainingData]:
        """The model to train (``model`` if given) and the data, preprocessed as the model expects."""

    def collate(self, items: Sequence[Any]) -> tuple[torch.Tensor, Any, int]:
        """A batch of dataset items as (inputs, targets, number of unreadable items dropped)."""

    def loss(
        self, net: nn.Module, inputs: torch.Tensor, targets: Any, config: TrainConfig, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The forward pass and the loss to minimise, with a 1-d tensor of ``train_stats`` sums (detached).

        ``generator`` seeds any randomness of the step (mixup, say), so that a resumed run draws the same.
        """

    def summarize(self, totals: dict[str, float]) -> dict[str, float]:
        """Training metrics from summed ``train_stats`` (e.g. loss and top-1 of the epoch so far)."""

    def evaluate(self, model: Any, dataset: Dataset, batch_size: int, workers: int, device: torch.device) -> Evaluation:
        """Score ``model`` (a module or any callable from inputs to outputs); summed across processes."""


@runtime_checkable
class Calibrated(Protocol):
    """A task that offers calibration images, which int8 (quantization-aware training) needs."""

    def calibration_batch(self, data: TrainingData, count: int) -> torch.Tensor:
        """Up to ``count`` training inputs spread through the set, preprocessed as for evaluation."""
