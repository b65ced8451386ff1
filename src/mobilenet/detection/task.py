"""Object detection as a task of the trainer: SSDLite on COCO JSON, YOLO or PASCAL VOC folders, scored by COCO mAP.

Training samples are SSD's augmentation (:mod:`mobilenet.detection.augment`) resized to ``--input-size`` (320,
Table 6's), matched to the anchors in the data loader's workers; the loss is TF's (sigmoid classification with
hard-negative mining, smooth-L1 boxes, normalized by the matches). Validation runs the post-processing and
pycocotools' COCOeval (mAP@[.5:.95] picks best.safetensors). The model's column 0 is the background, its
others the data's classes in order. Of the classification settings, ``hflip`` applies; the others are refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from mobilenet.data.images import normalize
from mobilenet.detection.augment import augment_record
from mobilenet.detection.config import DETECTION_MODELS, SSDConfig
from mobilenet.detection.data import DetectionRecord, DetectionSet, detection_dataset
from mobilenet.detection.evaluate import DetectionEvaluation
from mobilenet.detection.load import BACKGROUND, detector_from_classifier, load_detector, not_detection
from mobilenet.detection.loss import LOSS_STATS, ssd_loss
from mobilenet.detection.matcher import targets
from mobilenet.detection.model import SSD
from mobilenet.detection.validate import ResizedImages, evaluate_detector
from mobilenet.training.config import TrainConfig
from mobilenet.training.task import TrainingData

DEFAULT_MODEL = "ssdlite_mobilenet_v2"
CLASSIFICATION_ONLY = ("small_input", "linear_bottleneck", "shortcut", "mixup", "cutmix", "qat")

Sample = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]  # image, box codes, class targets, positives


def split_records(found: DetectionSet, fraction: float, seed: int) -> tuple[DetectionSet, DetectionSet]:
    """A seeded split: ``fraction`` of the images (at least one) for validation, the rest for training."""
    order = np.random.default_rng(seed).permutation(len(found.records))
    cut = max(1, round(len(order) * fraction))
    pick = lambda indices: replace(found, records=[found.records[i] for i in sorted(indices)])  # noqa: E731
    return pick(order[cut:]), pick(order[:cut])


def training_sets(config: TrainConfig) -> tuple[DetectionSet, DetectionSet, str]:
    """(train, val) sets and where they came from: ``--val-data``, the layout's own val split (VOC's
    ``ImageSets/Main/val.txt``, COCO's ``instances_val*.json``, ``val/``), or else ``--val-fraction`` of the data."""
    if config.data is None:
        raise ValueError("detection learns from --data: a COCO .json, a PASCAL VOC folder or a YOLO folder")
    if config.val_data is not None:
        return detection_dataset(config.data), detection_dataset(config.val_data), f"{config.data} + {config.val_data}"
    if Path(config.data).is_dir():
        try:
            train, val = detection_dataset(config.data, "train"), detection_dataset(config.data, "val")
            return train, val, f"{config.data} (its train and val splits)"
        except ValueError:
            pass  # no splits of its own
    train, val = split_records(detection_dataset(config.data), config.val_fraction, config.seed)
    return train, val, f"{config.data} (validation: {config.val_fraction:.0%} of it)"


def start_from(path: str, classes: int, overrides: dict[str, Any]) -> SSD:
    """A detector's weights as they are, or new heads on a classifier's backbone: ``load_detector`` refuses a
    classifier with :func:`not_detection`'s message, and only that refusal sends the file to the classifier's loader."""
    try:
        model = load_detector(path, **overrides)
    except ValueError as error:
        if str(error) != not_detection(Path(path)):
            raise
        return detector_from_classifier(path, num_classes=classes, **overrides)
    if model.num_classes != classes:
        raise ValueError(
            f"{path} predicts {model.num_classes - 1} classes, but the data has {classes - 1}: "
            "start from its backbone instead (a classifier's weights)"
        )
    return model


def detection_model(config: TrainConfig, classes: int, size: int) -> SSD:
    """A new SSD as ``--model`` (and ``--width-mult``) name it, or fine-tuning's start from ``--weights``."""
    name = config.model or DEFAULT_MODEL
    if name not in DETECTION_MODELS:
        raise ValueError(f"--model {name!r} is not a detector: choose one of {', '.join(DETECTION_MODELS)}")
    named: SSDConfig = DETECTION_MODELS[name]
    if config.width_mult is not None:
        named = replace(named, width_mult=config.width_mult)
    if config.weights is None:
        return SSD(replace(named, num_classes=classes, input_size=size))
    return start_from(config.weights, classes, {"input_size": size})


class TrainingSamples(Dataset):
    """Augmented training samples matched to the anchors, indexed by ``(index, seed)``; None when unreadable."""

    def __init__(self, records: Sequence[DetectionRecord], model: SSD, hflip: bool) -> None:
        self.records, self.hflip = list(records), hflip
        self.size, self.pre, self.config = model.config.input_size, model.preprocessing, model.config
        self.anchors = model.anchors(self.size, self.size)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: tuple[int, int] | int) -> Sample | None:
        index, seed = key if isinstance(key, tuple) else (key, 0)
        try:
            sample = augment_record(self.records[index], self.size, np.random.default_rng(seed), hflip=self.hflip)
        except (OSError, ValueError):
            return None
        boxes, labels = torch.as_tensor(sample.boxes, dtype=torch.float32), torch.as_tensor(sample.labels)
        codes, classes, positives = targets(
            boxes, labels, self.anchors, self.config.num_classes, self.config.box_coder_scales
        )
        return normalize(sample.pixels, self.pre), codes, classes, positives


class DetectionTask:
    """Object detection with SSD / SSDLite, scored by COCO's mAP@[.5:.95]."""

    name = "detection"
    best_metric = "map"
    train_stats = LOSS_STATS  # loss sums weighted by matches, then the matches and mined negatives

    def __init__(self) -> None:
        self.model: SSD | None = None
        self.classes: list[str] = []

    def prepare(self, config: TrainConfig, model: nn.Module | None = None) -> tuple[nn.Module, TrainingData]:
        """The model (given, new, or from ``--weights``) at ``--input-size`` (320 by default) and the sets."""
        refused = [name for name in CLASSIFICATION_ONLY if getattr(config, name) not in (None, 0.0, False)]
        if refused:
            raise ValueError(f"--{refused[0].replace('_', '-')} is a classification setting: detection takes none")
        train, val, source = training_sets(config)
        if train.classes != val.classes:
            raise ValueError(f"the training classes {train.classes} differ from validation's {val.classes}")
        self.classes = list(train.classes)
        if model is None:
            model = detection_model(config, len(self.classes) + 1, config.input_size or SSDConfig().input_size)
        model.class_names = [BACKGROUND, *self.classes]
        model.preprocessing = replace(model.preprocessing, input_size=model.config.input_size, crop_pct=1.0)
        self.model = model
        samples = TrainingSamples(train.records, model, config.hflip)
        return model, TrainingData(samples, val, self.classes, f"{source}: {'; '.join(train.report.lines())}")

    def collate(self, items: Sequence[Sample | None]) -> tuple[torch.Tensor, tuple[torch.Tensor, ...], int]:
        kept = [item for item in items if item is not None]
        if not kept:
            return torch.empty(0), (), len(items)
        images, codes, classes, positives = (torch.stack(column) for column in zip(*kept, strict=True))
        return images, (codes, classes, positives), len(items) - len(kept)

    def loss(
        self, net: nn.Module, images: torch.Tensor, targets: tuple[torch.Tensor, ...], config: TrainConfig,
        generator: torch.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """TF's SSD loss (float32 under autocast); the first three stats are sums over matches, for the epoch's mean."""
        box_codes, class_logits = net(images)
        anchors = self.model.anchors(*images.shape[-2:]).to(images.device)
        loss, stats = ssd_loss(
            box_codes.float(),
            class_logits.float(),
            *targets,
            anchors=anchors,
            scales=self.model.config.box_coder_scales,
        )
        matches = stats[3].clamp(min=1)
        return loss, torch.cat([stats[:3] * matches, stats[3:]])

    def summarize(self, totals: dict[str, float]) -> dict[str, float]:
        matches = max(totals["positives"], 1.0)
        return {name: totals[name] / matches for name in ("loss", "classification", "localization")}

    def evaluate(
        self, model: Any, dataset: DetectionSet, batch_size: int, workers: int, device: torch.device
    ) -> DetectionEvaluation:
        if not isinstance(model, nn.Module):
            raise ValueError("detection is evaluated on the PyTorch model (an int8 IR has no detection scoring yet)")
        return evaluate_detector(model, dataset.records, dataset.classes, batch_size, workers, device)

    def calibration_batch(self, data: TrainingData, count: int) -> torch.Tensor:
        """Up to ``count`` validation images spread through the set, resized as evaluation resizes them."""
        images = ResizedImages(data.val.records, self.model.preprocessing)
        taken = min(count, len(images))
        items = [images[i * len(images) // taken] for i in range(taken)]
        return torch.stack([item[0] for item in items if item is not None])
