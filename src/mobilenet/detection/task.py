"""Object detection as a task of the trainer: SSDLite on COCO JSON, YOLO or PASCAL VOC folders, scored by COCO mAP.

Training samples are SSD's augmentation (:mod:`mobilenet.detection.augment`) resized to ``--input-size`` (320,
Table 6's), matched to the anchors in the data loader's workers; the loss is TF's (sigmoid classification with
hard-negative mining, smooth-L1 boxes, normalized by the matches). Validation runs the post-processing and
pycocotools' COCOeval (mAP@[.5:.95] picks best.safetensors). The model's column 0 is the background, its
others the data's classes in order. Its own settings (:class:`DetectionSettings`): the anchors, the map the lowest
layer reads, and how boxes are matched and mined.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mobilenet.data.subsets import split_folders, split_fraction
from mobilenet.data.tables import is_table
from mobilenet.data.tars import is_shards
from mobilenet.detection.anchors import grid_sizes
from mobilenet.detection.augment import AugmentedRecords, Sample
from mobilenet.detection.config import DETECTION_MODELS, TASK, DetectionSettings, SSDConfig
from mobilenet.detection.data import DetectionSet, detection_dataset
from mobilenet.detection.evaluate import evaluate_detector
from mobilenet.detection.load import BACKGROUND, is_detector_file, load_detector
from mobilenet.detection.loss import LOSS_STATS, ssd_loss
from mobilenet.detection.metrics import DetectionEvaluation
from mobilenet.detection.model import SSD
from mobilenet.training.config import TrainConfig, flag
from mobilenet.training.task import TrainingData
from mobilenet.weights.load import start_from
from mobilenet.weights.relabel import NewLabels

DEFAULT_MODEL = "ssdlite_mobilenet_v2"


def split_records(found: DetectionSet, fraction: float, seed: int) -> tuple[DetectionSet, DetectionSet]:
    """A seeded split: ``fraction`` of the images (at least one) for validation, the rest for training."""
    train, val = split_fraction(found.records, fraction, seed)
    return replace(found, records=train), replace(found, records=val)


def training_sets(config: TrainConfig) -> tuple[DetectionSet, DetectionSet, str]:
    """(train, val) sets and where they came from: ``--val-data``, the layout's own val split (VOC's
    ``ImageSets/Main/val.txt``, COCO's ``instances_val*.json``, ``val/``), or else ``--val-fraction`` of the data."""
    if config.data is None:
        raise ValueError("detection learns from --data: a COCO .json, a PASCAL VOC folder or a YOLO folder")
    if config.val_data is not None:
        return detection_dataset(config.data), detection_dataset(config.val_data), f"{config.data} + {config.val_data}"
    if (splits := split_folders(config.data)) is not None and all(is_shards(p) or is_table(p) for p in splits):
        return detection_dataset(splits[0]), detection_dataset(splits[1]), f"{splits[0]} + {splits[1]}"
    if Path(config.data).is_dir():
        try:
            train, val = detection_dataset(config.data, "train"), detection_dataset(config.data, "val")
            return train, val, f"{config.data} (its train and val splits)"
        except ValueError:
            pass  # no splits of its own
    train, val = split_records(detection_dataset(config.data), config.val_fraction, config.seed)
    return train, val, f"{config.data} (validation: {config.val_fraction:.0%} of it)"


# The settings that shape a detector's heads: a detector's file goes on with its own.
HEAD_SHAPING = ("lowest_layer_stride", "reduce_boxes_in_lowest_layer")


def detection_model(
    config: TrainConfig, settings: DetectionSettings, classes: list[str], size: int
) -> tuple[SSD, dict[str, list[str]] | None]:
    """A new SSD for ``classes`` (the background's first) as ``--model`` (and ``--width-mult``) name it, or
    fine-tuning's start from ``--weights``, with the anchors and the lowest layer of ``settings`` where they are set
    (those a detector's heads were trained with are refused in one line where they differ); beside it, where a
    detector's class predictors are new, where each class's started (:func:`~mobilenet.weights.load.start_from`)."""
    name = config.model or DEFAULT_MODEL
    if name not in DETECTION_MODELS:
        raise ValueError(f"--model {name!r} is not a detector: choose one of {', '.join(DETECTION_MODELS)}")
    named: SSDConfig = DETECTION_MODELS[name]
    if config.width_mult is not None:
        named = replace(named, width_mult=config.width_mult)
    overrides: dict[str, Any] = {"input_size": size, **settings.model_overrides()}
    if config.weights is None:
        return SSD(replace(named, num_classes=len(classes), **overrides)), None
    labels = NewLabels(classes, config.class_merges(), config.keep_class_rows)
    if not is_detector_file(config.weights):
        return start_from(config.weights, SSD, load_detector, is_detector_file, labels, overrides)
    kept = {name: value for name, value in overrides.items() if name not in HEAD_SHAPING}
    model, class_rows = start_from(config.weights, SSD, load_detector, is_detector_file, labels, kept)
    for name in (name for name in HEAD_SHAPING if name in overrides):
        if getattr(model.config, name) != overrides[name]:
            raise ValueError(
                f"{flag(name)} {str(overrides[name]).lower()} changes the heads of the detector in {config.weights} "
                f"(it has {str(getattr(model.config, name)).lower()}): drop it, or start from a classifier's weights"
            )
    return model, class_rows


def depthwise_on_one_pixel(config: SSDConfig, size: int) -> bool:
    """Whether an SSDLite's extra layers run a depthwise convolution on a 1x1 map at inputs of ``size``."""
    first = len(config.tap_strides) - 1  # the extra layers read the last tap, then each other's outputs
    read = grid_sizes(config, size, size)[first : first + len(config.extra_depths)]
    return config.separable and any(height == width == 1 for height, width in read)


def check_bf16_channels_last(config: TrainConfig, model: SSDConfig) -> None:
    """Refuse what PyTorch's CPU kernels train wrong: in bfloat16 and channels-last, the weight gradient of a depthwise
    convolution on a 1x1 map is left random (uninitialized memory: seen with torch 2.13, now and then NaN), which an
    SSDLite's extra layers meet at small inputs (below 257 pixels)."""
    on_cuda = config.device.startswith("cuda") or (config.device == "auto" and torch.cuda.is_available())
    size = model.input_size
    if not (config.amp and config.channels_last) or on_cuda or not depthwise_on_one_pixel(model, size):
        return
    smallest = next(s for s in range(size, 4096) if not depthwise_on_one_pixel(model, s))
    raise ValueError(
        f"--amp with --channels-last trains this detector wrong on a CPU: at --input-size {size} its extra layers run "
        "depthwise convolutions on 1x1 maps, whose weight gradients PyTorch's bf16 channels-last CPU kernel leaves "
        f"random; drop --channels-last, or train at --input-size {smallest} or more"
    )


class DetectionTask:
    """Object detection with SSD / SSDLite, scored by COCO's mAP@[.5:.95]."""

    name = TASK
    settings = DetectionSettings
    best_metric = "map"
    train_stats = LOSS_STATS  # loss sums weighted by matches, then the matches and mined negatives

    def __init__(self) -> None:
        self.model: SSD | None = None
        self.classes: list[str] = []
        self.options = DetectionSettings()

    def prepare(self, config: TrainConfig, model: nn.Module | None = None) -> tuple[nn.Module, TrainingData]:
        """The model (given, new, or from ``--weights``) at ``--input-size`` (320 by default) and the sets."""
        self.options = DetectionSettings(**config.options)
        train, val, source = training_sets(config)
        if train.classes != val.classes:
            raise ValueError(f"the training classes {train.classes} differ from validation's {val.classes}")
        self.classes = list(train.classes)
        class_rows = None
        if model is None:
            size = config.input_size or SSDConfig().input_size
            model, class_rows = detection_model(config, self.options, [BACKGROUND, *self.classes], size)
        model.class_names = [BACKGROUND, *self.classes]
        model.preprocessing = replace(model.preprocessing, input_size=model.config.input_size, crop_pct=1.0)
        check_bf16_channels_last(config, model.config)
        self.model = model
        samples = AugmentedRecords(train.records, model, config.hflip, self.options.match_threshold)
        report = f"{source}: {'; '.join(train.report.lines())}"
        return model, TrainingData(samples, val, self.classes, report, class_rows)

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
            negatives_per_positive=self.options.negatives_per_positive,
            min_negatives=self.options.min_negatives,
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
