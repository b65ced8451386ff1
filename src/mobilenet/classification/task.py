"""Classification as a task of the trainer: labelled image folders, cross-entropy (with mixup/cutmix), top-k."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mobilenet.classification.data import (
    Augmentation,
    LabelledImages,
    collate,
    load_digits_images,
    scan_folder,
    split_fraction,
)
from mobilenet.classification.evaluate import EvalResult, evaluate_dataset
from mobilenet.classification.mixing import mix_batch
from mobilenet.nn.model import MobileNet
from mobilenet.nn.preprocessing import Preprocessing
from mobilenet.nn.variants import MODELS
from mobilenet.training.config import TrainConfig
from mobilenet.training.task import TrainingData
from mobilenet.weights.load import load_model


def labelled_samples(config: TrainConfig) -> tuple[list, list, list[str], str]:
    """(train, val) samples, class names and a description of where they came from."""
    if config.data is None:
        samples, classes = load_digits_images()
        train, val = split_fraction(samples, config.val_fraction, config.seed)
        return train, val, classes, "scikit-learn digits (embedded)"
    root = Path(config.data)
    if config.val_data is not None:
        train, classes = scan_folder(root)
        val, val_classes = scan_folder(config.val_data)
        if val_classes != classes:
            raise ValueError(f"{config.val_data} has classes {val_classes[:3]}... but {root} has {classes[:3]}...")
        return train, val, classes, f"{root} + {config.val_data}"
    if (root / "train").is_dir() and (root / "val").is_dir():
        return labelled_samples(replace(config, data=str(root / "train"), val_data=str(root / "val")))
    samples, classes = scan_folder(root)
    train, val = split_fraction(samples, config.val_fraction, config.seed)
    return train, val, classes, f"{root} (validation: {config.val_fraction:.0%} of each class)"


class ClassificationTask:
    """Image classification: what ``mobilenet train`` learns unless told otherwise."""

    name = "classification"
    best_metric = "top1"
    train_stats = ("loss", "correct", "samples")

    def __init__(self) -> None:
        self.num_classes = 0

    def prepare(self, config: TrainConfig, model: nn.Module | None = None) -> tuple[nn.Module, TrainingData]:
        """The model to train and its datasets, preprocessed as the model's weights expect.

        A given ``model`` (a reference implementation, say) is trained instead of one built from the config.
        """
        train, val, classes, source = labelled_samples(config)
        if len(classes) < 2:
            raise ValueError(f"the dataset has a single class ({classes[0]}): a classifier needs at least two")
        given = {
            "input_size": config.input_size,
            "small_input": config.small_input,
            "linear_bottleneck": config.linear_bottleneck,
            "shortcut": config.shortcut,
        }
        overrides = {"dropout": config.dropout} | {key: value for key, value in given.items() if value is not None}
        if model is not None:
            model.preprocessing = Preprocessing(input_size=config.input_size or 224)
        elif config.weights is not None:  # the file's architecture, unless the config names one
            model = load_model(config.weights, MODELS.get(config.model or ""), **overrides)
            if model.class_names != classes:
                model.reset_classifier(len(classes))
        else:
            width = {} if config.width_mult is None else {"width_mult": config.width_mult}
            name = config.model or "mobilenet_v2_100"
            if name not in MODELS:
                raise ValueError(f"--model {name!r} is not a classifier: choose one of {', '.join(sorted(MODELS))}")
            base = MODELS[name]
            model = MobileNet(replace(base, num_classes=len(classes), **overrides, **width))
        pre = replace(model.preprocessing, input_size=config.input_size or model.preprocessing.input_size)
        model.class_names, model.preprocessing = list(classes), pre
        augmentation = Augmentation(scale=(config.crop_scale_min, 1.0), hflip=config.hflip)
        self.num_classes = len(classes)
        data = TrainingData(
            LabelledImages(train, classes, pre, augmentation), LabelledImages(val, classes, pre), classes, source
        )
        return model, data

    def collate(self, items: Sequence[Any]) -> tuple[torch.Tensor, torch.Tensor, int]:
        return collate(list(items))

    def loss(
        self, net: nn.Module, images: torch.Tensor, labels: torch.Tensor, config: TrainConfig,
        generator: torch.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        images, targets = mix_batch(config, images, labels, self.num_classes, generator)
        logits = net(images)
        loss = nn.functional.cross_entropy(logits.float(), targets, label_smoothing=config.label_smoothing)
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
        return calibration_batch(data.train, count)


def calibration_batch(images: LabelledImages, count: int) -> torch.Tensor:
    """Up to ``count`` images spread evenly through ``images``, preprocessed as for evaluation."""
    plain = images.without_augmentation()
    taken = min(count, len(plain))
    picks = [plain[i * len(plain) // taken] for i in range(taken)]
    return torch.stack([pick[0] for pick in picks if pick is not None])
