"""Semantic segmentation as a task of the trainer: Mobile DeepLabv3 on VOC-layout image and mask folders.

Training crops are DeepLab's (see :mod:`mobilenet.segmentation.augment`), the loss is cross-entropy over the
labelled pixels (VOC's void border, 255, is ignored), and validation is DeepLab's protocol (each image padded to
the model's input size, scored at its own size) summed into one confusion matrix across processes: mIoU picks
best.safetensors. The classes are the set's ``classes.txt``, else PASCAL VOC's 21; from a DeepLab of other classes the
last layer is new. Its own settings (:class:`SegmentationSettings`): the dropout, label
smoothing, output stride and random scales of training.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from mobilenet.data.images import normalize
from mobilenet.data.subsets import split_folders, split_fraction, spread
from mobilenet.nn.preprocessing import Preprocessing
from mobilenet.segmentation.augment import AugmentedPairs, Crop, collate_crops
from mobilenet.segmentation.config import SEGMENTATION_MODELS, TASK, SegmentationSettings
from mobilenet.segmentation.data import (
    CROP,
    IGNORE_INDEX,
    Pair,
    SegmentationPairs,
    dataset_classes,
    pad_to_crop,
    pairs_of,
    voc_pairs,
)
from mobilenet.segmentation.evaluate import evaluate_segmentation
from mobilenet.segmentation.load import is_deeplab_file, load_deeplab
from mobilenet.segmentation.metrics import SegmentationEvaluation
from mobilenet.segmentation.model import DeepLabV3
from mobilenet.segmentation.predict import model_predictor
from mobilenet.training.config import TrainConfig
from mobilenet.training.task import TrainingData
from mobilenet.utils.modes import evaluating
from mobilenet.weights.load import start_from
from mobilenet.weights.relabel import NewLabels

DEFAULT_MODEL = "deeplabv3_mobilenet_v2"

Pairs = Sequence[Pair]


def training_pairs(config: TrainConfig) -> tuple[Pairs, Pairs, str]:
    """(train, val) image-mask pairs and where they came from.

    ``--data`` is a VOC folder (``JPEGImages/``, ``SegmentationClass/``), its shards, or a root with ``train/`` and
    ``val/`` ones; validation is ``--val-data``, that ``val/``, the devkit's ``ImageSets/Segmentation/val.txt``, or else
    ``--val-fraction`` of the pairs.
    """
    if config.data is None:
        raise ValueError(
            "segmentation learns from --data: a VOC folder (JPEGImages/ and SegmentationClass/) or a root with "
            "train/ and val/ ones"
        )
    root = Path(config.data)
    if config.val_data is not None:
        return pairs_of(root), pairs_of(config.val_data), f"{root} + {config.val_data}"
    if (splits := split_folders(root)) is not None:
        return pairs_of(splits[0]), pairs_of(splits[1]), f"{splits[0]} + {splits[1]}"
    sets = root / "ImageSets" / "Segmentation"  # the VOC devkit itself
    if (sets / "train.txt").is_file() and (sets / "val.txt").is_file():
        return voc_pairs(root, sets / "train.txt"), voc_pairs(root, sets / "val.txt"), f"{root} (devkit train, val)"
    train, val = split_fraction(pairs_of(root), config.val_fraction, config.seed)
    return train, val, f"{root} (validation: {config.val_fraction:.0%} of it)"


def check_pairs(pairs: SegmentationPairs, threads: int) -> None:
    """Read every pair once, before training: a bad mask then stops the run at once in one line, not epochs later
    inside a DataLoader worker (whose error PyTorch wraps in the worker's traceback)."""
    with ThreadPoolExecutor(max(threads, 1)) as pool:  # decoding releases the GIL
        deque(pool.map(pairs.__getitem__, range(len(pairs))), maxlen=0)


def segmentation_model(
    config: TrainConfig, settings: SegmentationSettings, classes: list[str], crop: int
) -> tuple[DeepLabV3, dict[str, list[str]] | None]:
    """A new DeepLabV3 as ``--model`` (and ``--width-mult``) name it, or fine-tuning's start from ``--weights`` (a new
    last layer where its classes are not ``classes``, whose rows start as :func:`~mobilenet.weights.load.start_from`
    says, returned beside the model)."""
    name = config.model or DEFAULT_MODEL
    if name not in SEGMENTATION_MODELS:
        raise ValueError(
            f"--model {name!r} is not a segmentation model: choose one of {', '.join(SEGMENTATION_MODELS)}"
        )
    named = SEGMENTATION_MODELS[name]
    if config.width_mult is not None:
        named = replace(named, width_mult=config.width_mult)
    overrides = {"output_stride": settings.output_stride, "input_size": crop, "dropout": settings.dropout}
    if config.weights is None:
        return DeepLabV3(replace(named, num_classes=len(classes), **overrides)), None
    labels = NewLabels(classes, config.class_merges(), config.keep_class_rows)
    model, class_rows = start_from(config.weights, DeepLabV3, load_deeplab, is_deeplab_file, labels, overrides)
    found = (model.config.arch, model.config.width_mult)
    if (config.model or config.width_mult is not None) and found != (named.arch, named.width_mult):
        raise ValueError(
            f"--weights {config.weights} holds {found[0]} width {found[1]:g}, not the {named.arch} width "
            f"{named.width_mult:g} of --model/--width-mult: leave them unset to take the file's"
        )
    return model, class_rows


class SegmentationTask:
    """Semantic segmentation of PASCAL VOC's classes, scored by mIoU."""

    name = TASK
    settings = SegmentationSettings
    best_metric = "miou"
    train_stats = ("loss", "correct_pixels", "pixels")

    def __init__(self) -> None:
        self.crop = CROP  # the training crop, at which evaluation pads too; both set by prepare
        self.preprocessing: Preprocessing | None = None
        self.options = SegmentationSettings()

    def prepare(self, config: TrainConfig, model: nn.Module | None = None) -> tuple[nn.Module, TrainingData]:
        """The model (given, new, or from ``--weights``) and the pairs: training crops of ``--input-size`` (DeepLab's
        513 by default), validation images whole. Every pair is read once here, so that a bad mask fails first."""
        self.options = SegmentationSettings(**config.options)
        train, val, source = training_pairs(config)
        classes = dataset_classes(config.data)
        self.crop = config.input_size or CROP
        class_rows = None
        if model is None:
            model, class_rows = segmentation_model(config, self.options, classes, self.crop)
        self.preprocessing = replace(model.preprocessing, input_size=self.crop, crop_pct=1.0)
        model.class_names, model.preprocessing = classes, self.preprocessing
        train_pairs, val_pairs = SegmentationPairs(train, classes), SegmentationPairs(val, classes)
        for pairs in (train_pairs, val_pairs):
            check_pairs(pairs, config.workers)
        augmented = AugmentedPairs(train_pairs, self.crop, self.preprocessing, config.hflip, self.options.scales)
        return model, TrainingData(augmented, val_pairs, classes, source, class_rows)

    def collate(self, items: Sequence[Crop | None]) -> tuple[torch.Tensor, torch.Tensor, int]:
        return collate_crops(items)

    def loss(
        self, net: nn.Module, images: torch.Tensor, masks: torch.Tensor, config: TrainConfig,
        generator: torch.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """Cross-entropy averaged over the labelled pixels (as DeepLab's), 0 for a crop of void alone (not NaN)."""
        logits = net(images).float()  # the loss in float32 under autocast
        labelled = masks != IGNORE_INDEX
        pixels = labelled.sum()
        summed = F.cross_entropy(
            logits, masks, ignore_index=IGNORE_INDEX, reduction="sum", label_smoothing=self.options.label_smoothing
        )
        loss = summed / pixels.clamp(min=1)
        correct = ((logits.detach().argmax(1) == masks) & labelled).sum()
        return loss, torch.stack([summed.detach(), correct.to(loss.dtype), pixels.to(loss.dtype)])

    def summarize(self, totals: dict[str, float]) -> dict[str, float]:
        pixels = max(totals["pixels"], 1.0)
        return {"loss": totals["loss"] / pixels, "pixel_acc": totals["correct_pixels"] / pixels}

    def evaluate(
        self, model: Any, dataset: SegmentationPairs, batch_size: int, workers: int, device: torch.device
    ) -> SegmentationEvaluation:
        """DeepLab's protocol at the training crop size; ``model`` is a module, or a callable on normalized inputs
        (the int8 IR after qat)."""
        if isinstance(model, nn.Module):
            predict = model_predictor(model)
        else:

            def predict(pixels: torch.Tensor) -> torch.Tensor:
                return model(normalize(pixels, self.preprocessing))

        with evaluating(model):
            return evaluate_segmentation(predict, dataset, self.crop, batch_size, workers, device=device)

    def calibration_batch(self, data: TrainingData, count: int) -> torch.Tensor:
        """Up to ``count`` training images spread through the set, padded as evaluation pads them."""
        pairs = data.train.pairs
        items = [pairs[i] for i in spread(count, len(pairs))]
        padded = [pad_to_crop(item[0], crop=self.crop).pixels for item in items if item is not None]
        return normalize(torch.stack(padded), self.preprocessing)
