"""Segmentation scores from one confusion matrix summed over a dataset (and over processes), as DeepLab scores;
and the record of an evaluation.

Summing pixel counts over the whole set before dividing is the standard (PASCAL VOC's, DeepLab's): a mean
of per-image IoUs would weigh a small image as much as a large one and differs by points.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mobilenet.data.shards import summed
from mobilenet.segmentation.data import IGNORE_INDEX


class ConfusionMatrix:
    """Pixel counts by (true class, predicted class), and per class the number of images it is in (ground truth).

    Counted with ``bincount`` on the device of the predictions; pixels whose true class is ``ignore_index``
    are not counted.
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX, device: torch.device | str = "cpu") -> None:
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.long, device=device)
        self.images = torch.zeros(num_classes, dtype=torch.long, device=device)

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        """Count one image's (H, W) or a batch's (N, H, W) predicted class indices against the true ones."""
        if prediction.shape != target.shape:
            raise ValueError(f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ in shape")
        if self.matrix.device != prediction.device:
            self.matrix, self.images = self.matrix.to(prediction.device), self.images.to(prediction.device)
        classes = self.num_classes
        target = target.to(prediction.device).reshape(-1 if target.dim() > 2 else 1, *target.shape[-2:])
        prediction = prediction.reshape(target.shape)
        valid = target != self.ignore_index
        truth, predicted = target[valid].long(), prediction[valid].long()
        for name, values in (("true", truth), ("predicted", predicted)):
            if values.numel() and (values.min() < 0 or values.max() >= classes):
                raise ValueError(f"{name} class indices must be in 0..{classes - 1} (or {self.ignore_index}, ignored)")
        self.matrix += torch.bincount(truth * classes + predicted, minlength=classes**2).view(classes, classes)
        image = torch.arange(len(target), device=target.device)[:, None, None].expand_as(target)[valid]
        present = torch.bincount(image * classes + truth, minlength=len(target) * classes).view(-1, classes) > 0
        self.images += present.sum(dim=0)

    def all_reduce(self) -> ConfusionMatrix:
        """Sum the counts of all processes, when a ``torch.distributed`` process group is initialized."""
        summed(self.matrix, self.images)
        return self

    def iou(self) -> torch.Tensor:
        """Per class intersection over union; NaN for a class neither in the ground truth nor predicted."""
        matrix = self.matrix.double()
        union = matrix.sum(dim=0) + matrix.sum(dim=1) - matrix.diagonal()
        return matrix.diagonal() / union  # 0 / 0 is NaN: the class is absent

    def miou(self) -> float:
        """The mean IoU over the classes in the ground truth or the predictions (as tf.metrics.mean_iou,
        DeepLab's metric, which leaves out the classes whose union is empty)."""
        return self.iou().nanmean().item()

    def pixel_accuracy(self) -> float:
        """The fraction of the counted (not ignored) pixels predicted right."""
        return (self.matrix.diagonal().sum() / self.matrix.sum()).item()


@dataclass
class SegmentationEvaluation:
    """Scores on a dataset (fractions in [0, 1]); a class's IoU is None when it was neither present nor predicted."""

    miou: float
    pixel_acc: float
    classes: list[str]
    iou: list[float | None]
    images: list[int]  # per class, the images whose ground truth holds it
    confusion: list[list[int]]  # rows: true class; columns: predicted class (pixels)
    n: int
    skipped: int

    @property
    def metrics(self) -> dict[str, float]:
        """The scores a training run records per epoch (as ``val_<name>``)."""
        return {"miou": self.miou, "pixel_acc": self.pixel_acc}

    @property
    def per_class(self) -> dict[str, dict[str, Any]]:
        return {
            name: {"iou": iou, "images": images}
            for name, iou, images in zip(self.classes, self.iou, self.images, strict=True)
        }

    def to_json(self) -> str:
        """``miou``, ``pixel_acc``, ``per_class`` (name -> iou, images), ``n`` and ``skipped`` as JSON."""
        scores = {"miou": self.miou, "pixel_acc": self.pixel_acc, "per_class": self.per_class}
        return json.dumps({**scores, "n": self.n, "skipped": self.skipped}, indent=2)

    def report(self, source: str) -> str:
        lines = [f"{source}: mIoU {self.miou:.2%}, pixel accuracy {self.pixel_acc:.2%} on {self.n} images "
                 f"({self.skipped} unreadable skipped)"]  # fmt: skip
        for name, scores in self.per_class.items():
            iou = "    n/a" if scores["iou"] is None else f"{scores['iou']:7.1%}"
            lines.append(f"  {iou}  {name} ({scores['images']} images)")
        return "\n".join(lines)

    def plot(self, path: str | Path, title: str = "") -> None:
        """Per-class IoU as bars, as PNG."""
        from mobilenet.segmentation.plots import plot_class_iou

        plot_class_iou(self, path, title)
