"""Scoring a segmentation model on (image, mask) pairs with DeepLab's protocol: any model, any runtime.

A model is scored through a :data:`Predictor`: padded uint8 pixels in, classes or logits out. That is what
both a PyTorch DeepLab (through :func:`model_predictor`) and Google's runtime on a TFLite file take, so both
are scored by the same code, on the same inputs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from mobilenet.data.images import AnyImage, as_rgb_image, normalize
from mobilenet.segmentation.data import CROP, Padded, SegmentationPairs, crop_back, pad_to_crop
from mobilenet.segmentation.metrics import ConfusionMatrix
from mobilenet.utils.plotting import pyplot, save_figure

# Images padded as DeepLab evaluates them, (N, 3, crop, crop) uint8 pixels 0..255, -> class indices
# (N, crop, crop) or logits (N, classes, crop, crop), at the input's size.
Predictor = Callable[[torch.Tensor], torch.Tensor]


def model_predictor(model: nn.Module) -> Predictor:
    """A PyTorch segmentation model as a :data:`Predictor` (in eval mode, on its device), fed as its
    ``preprocessing`` says (Google's DeepLab weights: pixel / 127.5 - 1)."""
    model.eval()
    device = next(model.parameters()).device
    return lambda pixels: model(normalize(pixels.to(device), model.preprocessing))


def class_indices(output: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """A predictor's output for ``pixels`` as (N, H, W) int64 class indices: logits are reduced by argmax."""
    if output.is_floating_point() and output.dim() == 4:
        output = output.argmax(dim=1)
    expected = (pixels.shape[0], *pixels.shape[2:])
    if output.is_floating_point() or tuple(output.shape) != expected:
        raise ValueError(
            f"the predictor gave {output.dtype} {tuple(output.shape)}: expected class indices {expected} or "
            f"logits (N, classes, H, W) at the input size"
        )
    return output.long()


@torch.inference_mode()
def predict_mask(predict: Predictor, image: AnyImage, crop: int = CROP) -> torch.Tensor:
    """One image's (H, W) class mask at its own size: padded to ``crop``, predicted, cropped back."""
    padded = pad_to_crop(as_rgb_image(image), crop=crop)
    return crop_back(class_indices(predict(padded.pixels[None]), padded.pixels[None])[0], padded)


def collate(
    items: list[tuple[Any, torch.Tensor] | None], crop: int = CROP
) -> tuple[list[Padded], list[torch.Tensor], int]:
    """Pad a batch's images per the protocol; also returns the masks and how many items were unreadable."""
    kept = [item for item in items if item is not None]
    return [pad_to_crop(image, crop=crop) for image, _ in kept], [mask for _, mask in kept], len(items) - len(kept)


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


@torch.inference_mode()
def evaluate_segmentation(
    predict: Predictor,
    dataset: SegmentationPairs,
    crop: int = CROP,
    batch_size: int = 4,
    workers: int = 0,
    progress: bool = False,
    device: torch.device | str = "cpu",
) -> SegmentationEvaluation:
    """Score ``predict`` on ``dataset``: each image padded to ``crop`` (see :func:`pad_to_crop`), the prediction
    cropped back and counted against the mask at the image's own size.

    Under ``torch.distributed`` each process scores its share and the counts are summed.
    """
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    loader = DataLoader(
        Subset(dataset, range(rank, len(dataset), world)),
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=partial(collate, crop=crop),
    )
    confusion = ConfusionMatrix(len(dataset.classes), dataset.ignore_index, device)
    counts = torch.zeros(2, dtype=torch.long, device=device)  # images scored, skipped
    for padded, masks, skipped in tqdm(loader, desc="segmenting", unit="batch", disable=not progress):
        counts[1] += skipped
        if not padded:
            continue
        pixels = torch.stack([p.pixels for p in padded]).to(device)
        predicted = class_indices(predict(pixels), pixels)
        for prediction, item, mask in zip(predicted, padded, masks, strict=True):
            confusion.update(crop_back(prediction, item), mask)
        counts[0] += len(padded)
    confusion.all_reduce()
    if world > 1:
        dist.all_reduce(counts)
    iou = confusion.iou().tolist()
    return SegmentationEvaluation(
        miou=confusion.miou(),
        pixel_acc=confusion.pixel_accuracy(),
        classes=list(dataset.classes),
        iou=[None if math.isnan(value) else value for value in iou],
        images=confusion.images.tolist(),
        confusion=confusion.matrix.tolist(),
        n=int(counts[0]),
        skipped=int(counts[1]),
    )


def plot_class_iou(result: SegmentationEvaluation, path: str | Path, title: str = "") -> None:
    """Bars of per-class IoU, each class labelled with the number of images it is in, and the mIoU as a line."""
    plt = pyplot()
    rows = zip(result.classes, result.images, result.iou, strict=True)
    labels = [f"{name} ({images}){' n/a' if iou is None else ''}" for name, images, iou in rows][::-1]
    values = [100 * (iou or 0.0) for iou in result.iou][::-1]
    fig, axis = plt.subplots(figsize=(7, 0.28 * len(labels) + 1.5))
    axis.barh(labels, values, color="tab:blue")
    axis.axvline(100 * result.miou, color="black", linestyle="--", label=f"mIoU {100 * result.miou:.2f}%")
    axis.set_xlim(0, 100)
    axis.set_xlabel("IoU (%); n/a: class neither present nor predicted")
    axis.set_ylabel("class (images with it)")
    axis.set_title(title or f"{result.n} images")
    axis.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
