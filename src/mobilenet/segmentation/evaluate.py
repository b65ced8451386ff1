"""Scoring a segmentation model on (image, mask) pairs with DeepLab's protocol: any model, any runtime.

A model is scored through a :data:`~mobilenet.segmentation.predict.Predictor` (padded uint8 pixels in, classes or
logits out), so that a PyTorch DeepLab, a deployed one and Google's runtime on a TFLite file are scored by the same
code, on the same inputs. Every process scores its share, and the confusion matrices are summed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch

from mobilenet.data.shards import batches, summed
from mobilenet.segmentation.data import CROP, Padded, SegmentationPairs, crop_back, pad_to_crop, segmentation_dataset
from mobilenet.segmentation.metrics import ConfusionMatrix, SegmentationEvaluation
from mobilenet.segmentation.multiscale import inference
from mobilenet.segmentation.predict import Predictor, class_indices, model_predictor
from mobilenet.utils.modes import evaluating


def collate(
    items: list[tuple[Any, torch.Tensor] | None], crop: int = CROP
) -> tuple[list[Padded], list[torch.Tensor], int]:
    """Pad a batch's images per the protocol; also returns the masks and how many items were unreadable."""
    kept = [item for item in items if item is not None]
    return [pad_to_crop(image, crop=crop) for image, _ in kept], [mask for _, mask in kept], len(items) - len(kept)


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
    confusion = ConfusionMatrix(len(dataset.classes), dataset.ignore_index, device)
    counts = torch.zeros(2, dtype=torch.long, device=device)  # images scored, skipped
    for padded, masks, skipped in batches(dataset, batch_size, workers, partial(collate, crop=crop), "segmenting",
                                          progress):  # fmt: skip
        counts[1] += skipped
        if not padded:
            continue
        pixels = torch.stack([p.pixels for p in padded]).to(device)
        predicted = class_indices(predict(pixels), pixels)
        for prediction, item, mask in zip(predicted, padded, masks, strict=True):
            confusion.update(crop_back(prediction, item), mask)
        counts[0] += len(padded)
    confusion.all_reduce()
    summed(counts)
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


def evaluate_model(
    model: Any, dataset: SegmentationPairs, batch_size: int = 4, workers: int = 0, progress: bool = False,
    device: torch.device | str = "cpu", scales: Sequence[float] | None = None, flip: bool = False,
) -> SegmentationEvaluation:  # fmt: skip
    """:func:`evaluate_segmentation` of a Mobile DeepLabv3 (or a deployed one) at its own input size, in eval mode;
    multi-scale and flipped with ``scales`` and ``flip`` (see :mod:`mobilenet.segmentation.multiscale`)."""
    predict = inference(model_predictor(model), model, scales, flip)
    with evaluating(model):
        return evaluate_segmentation(predict, dataset, model.config.input_size, batch_size, workers, progress, device)


def evaluate_files(
    load: Callable[[int], Any],
    data: str | Path,
    batch_size: int = 4,
    workers: int = 2,
    progress: bool = False,
    ids: str | Path | None = None,
    scales: Sequence[float] | None = None,
    flip: bool = False,
) -> SegmentationEvaluation:
    """Score a segmentation model on a VOC folder (``ids``: the images to score, one a line) or COCO128's masks;
    ``load(images)`` gives the model (told how many images it will run on); ``scales`` and ``flip``: multi-scale
    and flipped inference."""
    dataset = segmentation_dataset(data, ids)  # first: a bad folder fails before a model is built
    return evaluate_model(load(len(dataset)), dataset, batch_size, workers, progress, scales=scales, flip=flip)
