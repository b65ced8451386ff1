"""Classification as a task of the trainer: labelled image folders, cross-entropy (with mixup/cutmix), top-k."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mobilenet.classification.augment import Augmentation, AugmentedImages
from mobilenet.classification.config import TASK, ClassificationSettings
from mobilenet.classification.data import LabelledImages, collate, load_digits_images, scan_labelled
from mobilenet.classification.evaluate import evaluate_dataset
from mobilenet.classification.metrics import EvalResult
from mobilenet.classification.mixing import mix_batch
from mobilenet.data.images import normalize
from mobilenet.data.subsets import split_folders, split_fraction, spread
from mobilenet.nn.model import MobileNet
from mobilenet.nn.preprocessing import Preprocessing
from mobilenet.nn.variants import MODELS
from mobilenet.training.config import TrainConfig
from mobilenet.training.task import TrainingData
from mobilenet.weights.load import load_model
from mobilenet.weights.relabel import NewLabels, needs_new_layer, refuse_merges, relabel

DEFAULT_MODEL = "mobilenet_v2_100"


def stratified(samples: list, fraction: float, seed: int) -> tuple[list, list]:
    """``fraction`` of every class's samples for validation, seeded."""
    return split_fraction(samples, fraction, seed, labels=[label for _, label in samples])


def labelled_samples(config: TrainConfig) -> tuple[list, list, list[str], str]:
    """(train, val) samples, class names and a description of where they came from."""
    if config.data is None:
        samples, classes = load_digits_images()
        train, val = stratified(samples, config.val_fraction, config.seed)
        return train, val, classes, "scikit-learn digits (embedded)"
    root = Path(config.data)
    if config.val_data is not None:
        train, classes = scan_labelled(root)
        val, val_classes = scan_labelled(config.val_data)
        if val_classes != classes:
            raise ValueError(f"{config.val_data} has classes {val_classes[:3]}... but {root} has {classes[:3]}...")
        return train, val, classes, f"{root} + {config.val_data}"
    if (splits := split_folders(root)) is not None:
        return labelled_samples(replace(config, data=str(splits[0]), val_data=str(splits[1])))
    samples, classes = scan_labelled(root)
    train, val = stratified(samples, config.val_fraction, config.seed)
    return train, val, classes, f"{root} (validation: {config.val_fraction:.0%} of each class)"


def classifier(
    config: TrainConfig, settings: ClassificationSettings, classes: list[str]
) -> tuple[MobileNet, dict[str, list[str]] | None]:
    """A new classifier as ``--model`` names it, or fine-tuning's start from ``--weights`` (its architecture, unless
    the config names one; a new classifier layer where its classes are not the data's, whose rows start as
    :func:`~mobilenet.weights.relabel.relabel` says, returned beside the model)."""
    given = {
        "input_size": config.input_size,
        "small_input": settings.small_input,
        "linear_bottleneck": settings.linear_bottleneck,
        "shortcut": settings.shortcut,
    }
    overrides = {"dropout": settings.dropout} | {key: value for key, value in given.items() if value is not None}
    if config.weights is not None:
        model = load_model(config.weights, MODELS.get(config.model or ""), **overrides)
        labels = NewLabels(classes, config.class_merges(), config.keep_class_rows)
        if needs_new_layer(model, classes):
            return model, relabel(model, labels)
        refuse_merges(labels, f"{config.weights} predicts the data's classes")
        return model, None
    width = {} if config.width_mult is None else {"width_mult": config.width_mult}
    name = config.model or DEFAULT_MODEL
    if name not in MODELS:
        raise ValueError(f"--model {name!r} is not a classifier: choose one of {', '.join(sorted(MODELS))}")
    return MobileNet(replace(MODELS[name], num_classes=len(classes), **overrides, **width)), None


class ClassificationTask:
    """Image classification: what ``mobilenet train`` learns unless told otherwise."""

    name = TASK
    settings = ClassificationSettings
    best_metric = "top1"
    train_stats = ("loss", "correct", "samples")

    def __init__(self) -> None:
        self.num_classes = 0
        self.options = ClassificationSettings()
        self.preprocessing = Preprocessing()

    def prepare(self, config: TrainConfig, model: nn.Module | None = None) -> tuple[nn.Module, TrainingData]:
        """The model to train and its datasets, preprocessed as the model's weights expect.

        A given ``model`` (a reference implementation, say) is trained instead of one built from the config.
        """
        self.options = ClassificationSettings(**config.options)
        train, val, classes, source = labelled_samples(config)
        if len(classes) < 2:
            raise ValueError(f"the dataset has a single class ({classes[0]}): a classifier needs at least two")
        class_rows = None
        if model is not None:
            model.preprocessing = Preprocessing(input_size=config.input_size or 224)
        else:
            model, class_rows = classifier(config, self.options, classes)
        pre = replace(model.preprocessing, input_size=config.input_size or model.preprocessing.input_size)
        model.class_names, model.preprocessing = list(classes), pre
        self.preprocessing = pre
        augmentation = Augmentation(scale=(self.options.crop_scale_min, 1.0), hflip=config.hflip)
        self.num_classes = len(classes)
        training = AugmentedImages(LabelledImages(train, classes, pre), augmentation)
        return model, TrainingData(training, LabelledImages(val, classes, pre), classes, source, class_rows)

    def collate(self, items: Sequence[Any]) -> tuple[torch.Tensor, torch.Tensor, int]:
        return collate(list(items))

    def loss(
        self, net: nn.Module, images: torch.Tensor, labels: torch.Tensor, config: TrainConfig,
        generator: torch.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        # Training images arrive as uint8 pixels (a quarter of the bytes to move), normalised here on the device.
        images = normalize(images, self.preprocessing)
        images, targets = mix_batch(self.options, images, labels, self.num_classes, generator)
        logits = net(images)
        loss = nn.functional.cross_entropy(logits.float(), targets, label_smoothing=self.options.label_smoothing)
        correct = (logits.detach().argmax(1) == labels).sum()
        stats = torch.stack([loss.detach() * len(labels), correct.to(loss.dtype), loss.new_tensor(len(labels))])
        return loss, stats

    def summarize(self, totals: dict[str, float]) -> dict[str, float]:
        seen = max(totals["samples"], 1.0)
        return {"loss": totals["loss"] / seen, "top1": totals["correct"] / seen}

    def evaluate(
        self, model: Any, dataset: LabelledImages, batch_size: int, workers: int, device: torch.device
    ) -> EvalResult:
        return evaluate_dataset(model, dataset, batch_size=batch_size, workers=workers, device=device)

    def calibration_batch(self, data: TrainingData, count: int) -> torch.Tensor:
        return calibration_batch(data.train.images, count)


def calibration_batch(images: LabelledImages, count: int) -> torch.Tensor:
    """Up to ``count`` images spread evenly through ``images``, preprocessed as for evaluation."""
    picks = [images[i] for i in spread(count, len(images))]
    return torch.stack([pick[0] for pick in picks if pick is not None])
