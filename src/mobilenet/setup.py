"""What a training run is made of: its data, model, optimizer, learning-rate schedule and mixing."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mobilenet.data import Augmentation, LabelledImages, load_digits_images, scan_folder, split_fraction
from mobilenet.model import MobileNet
from mobilenet.preprocess import Preprocessing
from mobilenet.qat import is_quantizer
from mobilenet.recipes import TrainConfig
from mobilenet.registry import MODELS, create_model
from mobilenet.weights import load_model


@dataclass(frozen=True)
class TrainingData:
    train: LabelledImages
    val: LabelledImages
    classes: list[str]
    source: str  # where the images came from, for the run's summary


def _samples(config: TrainConfig) -> tuple[list, list, list[str], str]:
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
        return _samples(replace(config, data=str(root / "train"), val_data=str(root / "val")))
    samples, classes = scan_folder(root)
    train, val = split_fraction(samples, config.val_fraction, config.seed)
    return train, val, classes, f"{root} (validation: {config.val_fraction:.0%} of each class)"


def prepare(config: TrainConfig, model: nn.Module | None = None) -> tuple[MobileNet, TrainingData]:
    """The model to train and its datasets, preprocessed as the model's weights expect.

    A given ``model`` (a reference implementation, say) is trained instead of one built from the config.
    """
    train, val, classes, source = _samples(config)
    if len(classes) < 2:
        raise ValueError(f"the dataset has a single class ({classes[0]}): a classifier needs at least two")
    given = {"input_size": config.input_size, "small_input": config.small_input}
    overrides = {"dropout": config.dropout} | {key: value for key, value in given.items() if value is not None}
    if model is not None:
        model.preprocessing = Preprocessing(input_size=config.input_size or 224)
    elif config.weights is not None:  # the file's architecture, unless the config names one
        model = load_model(config.weights, MODELS.get(config.model or ""), **overrides)
        if model.class_names != classes:
            model.reset_classifier(len(classes))
    else:
        width = {} if config.width_mult is None else {"width_mult": config.width_mult}
        model = create_model(config.model or "mobilenet_v2_100", num_classes=len(classes), **overrides, **width)
    pre = replace(model.preprocessing, input_size=config.input_size or model.preprocessing.input_size)
    model.class_names, model.preprocessing = list(classes), pre
    augmentation = Augmentation(scale=(config.crop_scale_min, 1.0), hflip=config.hflip)
    data = TrainingData(
        LabelledImages(train, classes, pre, augmentation), LabelledImages(val, classes, pre), classes, source
    )
    return model, data


def build_optimizer(config: TrainConfig, model: MobileNet) -> torch.optim.Optimizer:
    """Parameter groups: classifier vs backbone (``backbone_lr_mult``), and with vs without weight decay."""
    lr = config.scaled_lr()
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:  # quantization-aware training's bit widths and flags
            continue
        head = name.startswith("classifier.")
        # Conv and linear weights decay; norms and biases do not, nor the quantizers' learned ranges.
        decay = (param.dim() > 1 or config.decay_norm_and_bias) and not is_quantizer(name)
        groups.setdefault((head, decay), []).append(param)
    param_groups = [
        {
            "params": params,
            "lr": lr * (1.0 if head else config.backbone_lr_mult),
            "weight_decay": config.weight_decay if decay else 0.0,
        }
        for (head, decay), params in groups.items()
    ]
    if config.optimizer == "sgd":
        return torch.optim.SGD(param_groups, lr=lr, momentum=config.momentum)
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(
            param_groups, lr=lr, alpha=config.rmsprop_alpha, eps=config.rmsprop_eps, momentum=config.momentum
        )
    if config.optimizer == "adamw":
        return torch.optim.AdamW(param_groups, lr=lr)
    raise ValueError(f"unknown optimizer {config.optimizer!r}: use sgd, rmsprop or adamw")


def lr_factor(config: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """The learning rate at ``step`` as a fraction of the initial one: warm-up, then the schedule."""
    epoch = step / steps_per_epoch
    if epoch < config.warmup_epochs:
        return (step + 1) / (config.warmup_epochs * steps_per_epoch)
    progress = epoch - config.warmup_epochs
    if config.schedule == "exponential":  # staircase, as TF-slim's and torchvision's step decay
        return config.lr_decay ** math.floor(progress / config.decay_epochs)
    if config.schedule == "cosine":
        span = max(config.epochs - config.warmup_epochs, 1e-9)
        cosine = 0.5 * (1 + math.cos(math.pi * min(progress / span, 1.0)))
        return config.min_lr_ratio + (1 - config.min_lr_ratio) * cosine
    raise ValueError(f"unknown schedule {config.schedule!r}: use exponential or cosine")


def build_schedule(config: TrainConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(config, step, steps_per_epoch))


def ema_update(decay: float):
    """The EMA step for ``AveragedModel``: TF's ``ExponentialMovingAverage(decay, num_updates=step)``.

    The decay warms up as min(decay, (1 + n) / (10 + n)), so that early weights (and BatchNorm statistics)
    are forgotten quickly: a fixed 0.999 still holds ~45% of the random initialisation after 800 steps,
    which made short runs score chance in eval mode. Integer buffers (batch counters) are copied.
    """

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged: torch.Tensor) -> None:
        n = float(num_averaged)
        weight = 1.0 - min(decay, (1.0 + n) / (10.0 + n))
        if torch.is_floating_point(averaged[0]):
            torch._foreach_lerp_(averaged, current, weight)
        else:
            torch._foreach_copy_(averaged, current)

    return update


def mix_batch(
    config: TrainConfig, images: torch.Tensor, labels: torch.Tensor, num_classes: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Soft targets, with mixup or cutmix applied when configured (chosen at random if both are)."""
    targets = nn.functional.one_hot(labels, num_classes).float()
    if not (config.mixup or config.cutmix):
        return images, targets
    rng = np.random.default_rng(int(torch.randint(2**31, (1,), generator=generator)))
    use_cutmix = config.cutmix > 0 and (config.mixup == 0 or rng.random() < 0.5)
    alpha = config.cutmix if use_cutmix else config.mixup
    lam = float(rng.beta(alpha, alpha))
    order = torch.randperm(len(labels), generator=generator).to(labels.device)
    if use_cutmix:  # paste a box of area (1 - lam) from the partner image; lam follows the real area
        height, width = images.shape[-2:]
        cut_h, cut_w = int(height * math.sqrt(1 - lam)), int(width * math.sqrt(1 - lam))
        cy, cx = int(rng.integers(height)), int(rng.integers(width))
        top, bottom = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, height)
        left, right = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, width)
        images = images.clone()
        images[..., top:bottom, left:right] = images[order][..., top:bottom, left:right]
        lam = 1 - (bottom - top) * (right - left) / (height * width)
    else:
        images = lam * images + (1 - lam) * images[order]
    return images, lam * targets + (1 - lam) * targets[order]
