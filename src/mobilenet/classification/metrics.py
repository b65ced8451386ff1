"""A classifier's scores: top-1 and top-5, cross-entropy and the confusion matrix, counted batch by batch and summed
across processes (so a set scored by many gives the same figures as one process)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from mobilenet.data.shards import summed


def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor, k: int = 1) -> float:
    """The fraction of rows whose label is among the ``k`` highest logits."""
    top = logits.topk(min(k, logits.shape[1]), dim=1).indices
    return (top == labels[:, None]).any(dim=1).float().mean().item()


@dataclass
class EvalResult:
    """Scores of a model on a labelled dataset (fractions in [0, 1])."""

    top1: float
    top5: float
    n: int
    loss: float
    classes: list[str]
    per_class: list[float]
    confusion: list[list[int]]  # rows: true class; columns: predicted class, then "another output"
    images_per_s: float
    skipped: int

    @property
    def metrics(self) -> dict[str, float]:
        """The scores a training run records per epoch (as ``val_<name>``)."""
        return {"loss": self.loss, "top1": self.top1, "top5": self.top5}

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def report(self, source: str) -> str:
        lines = [
            f"{source}: top-1 {self.top1:.2%}, top-5 {self.top5:.2%} on {self.n} images "
            f"({self.images_per_s:.0f} images/s, {self.skipped} unreadable skipped)"
        ]
        lines += [f"  {accuracy:7.1%}  {name}" for name, accuracy in zip(self.classes, self.per_class, strict=True)]
        return "\n".join(lines)

    def plot(self, path: str | Path, title: str = "") -> None:
        """The confusion matrix, as PNG."""
        from mobilenet.classification.plots import plot_confusion

        plot_confusion(self.confusion, self.classes, path, title)


class Tally:
    """Top-5 hits, the loss and the confusion matrix of a set's batches, mapped from the model's outputs to the
    dataset's classes by ``targets`` (the output of each class)."""

    def __init__(self, classes: list[str], targets: list[int]) -> None:
        self.classes, self.to_model = classes, torch.tensor(targets)
        count = len(classes)
        self.confusion = torch.zeros(count, count + 1, dtype=torch.long)  # last column: outputs of no class
        self.counts = torch.zeros(4, dtype=torch.float64)  # top-5 hits, loss sum, images, skipped
        self.from_model: torch.Tensor | None = None  # model output -> dataset class (count: of none)

    def add(self, logits: torch.Tensor, labels: torch.Tensor, skipped: int = 0) -> None:
        self.counts[3] += skipped
        if not len(labels):
            return
        wanted = self.to_model[labels]
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        self.counts[0] += (top == wanted[:, None]).any(dim=1).sum()
        self.counts[1] += nn.functional.cross_entropy(logits, wanted, reduction="sum")
        self.counts[2] += len(labels)
        if self.from_model is None:
            self.from_model = torch.full((logits.shape[1],), len(self.classes), dtype=torch.long)
            self.from_model[self.to_model] = torch.arange(len(self.classes))
        self.confusion.index_put_((labels, self.from_model[top[:, 0]]), torch.ones_like(labels), accumulate=True)

    def result(self, seconds: float) -> EvalResult:
        """The scores of every process's batches together."""
        summed(self.confusion, self.counts)
        n = int(self.counts[2])
        rows = self.confusion.sum(dim=1).clamp(min=1)
        return EvalResult(
            top1=self.confusion.diagonal().sum().item() / max(n, 1),
            top5=self.counts[0].item() / max(n, 1),
            n=n,
            loss=self.counts[1].item() / max(n, 1),
            classes=list(self.classes),
            per_class=(self.confusion.diagonal() / rows).tolist(),
            confusion=self.confusion.tolist(),
            images_per_s=n / seconds if seconds else 0.0,
            skipped=int(self.counts[3]),
        )
