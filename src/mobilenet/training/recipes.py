"""The named training recipes, each a :class:`~mobilenet.training.config.TrainConfig` filled in."""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

from mobilenet.training.config import TrainConfig

RECIPES: dict[str, TrainConfig] = {
    # Sandler et al. 2018, section 6.1, as TF-slim trains it: RMSProp (decay and momentum 0.9), lr 0.045
    # per 96 images decayed x0.98 per epoch, weight decay 4e-5 on convolutions, label smoothing, EMA.
    "paper": TrainConfig(
        recipe="paper",
        optimizer="rmsprop",
        lr=0.045,
        lr_batch=96,
        schedule="exponential",
        lr_decay=0.98,
        weight_decay=4e-5,
        label_smoothing=0.1,
        ema_decay=0.9999,
        epochs=300,
        batch_size=96,
    ),
    # torchvision's reference recipe for mobilenet_v2: SGD, lr 0.045, x0.98 every epoch, 4e-5 weight decay.
    "torchvision": TrainConfig(
        recipe="torchvision",
        optimizer="sgd",
        lr=0.045,
        schedule="exponential",
        lr_decay=0.98,
        weight_decay=4e-5,
        label_smoothing=0.0,
        decay_norm_and_bias=True,
        epochs=300,
        batch_size=256,
    ),
    # Warm-up and cosine decay, label smoothing, no decay on norms and biases, EMA.
    "modern": TrainConfig(
        recipe="modern",
        optimizer="sgd",
        lr=0.1,
        lr_batch=256,
        schedule="cosine",
        warmup_epochs=1.0,
        weight_decay=4e-5,
        label_smoothing=0.1,
        ema_decay=0.999,
        epochs=150,
        batch_size=256,
    ),
    # From pretrained weights: a new classifier for the dataset, the backbone at a tenth of the lr, and
    # BatchNorm on its stored statistics: TFLite weights have it folded away (mean 0, var 1), and the
    # statistics of a small fine-tuning batch would replace the function the weights were trained for.
    "finetune": TrainConfig(
        recipe="finetune",
        optimizer="sgd",
        lr=0.01,
        schedule="cosine",
        warmup_epochs=0.0,
        backbone_lr_mult=0.1,
        freeze_bn=True,
        weight_decay=4e-5,
        label_smoothing=0.1,
        epochs=5,
        batch_size=32,
        dropout=0.2,
        crop_scale_min=0.35,
    ),
    # Mobile DeepLabv3 (Chen et al. 2017, section 4; research/deeplab's train.py): SGD with momentum 0.9, the poly
    # schedule from lr 0.007 per 16 crops, weight decay 4e-5, dropout 0.1 before the logits, no label smoothing.
    # DeepLab updates BatchNorm only with 16 crops or more: at 8 (what two CPU cores hold) its statistics stay
    # frozen, as they must for TFLite weights (folded away). About 45 epochs is DeepLab's 30k steps of 16 on VOC's
    # 10,582 train_aug images. From --weights: a classifier (a new head on its backbone) or DeepLab weights.
    # Frozen, the new head's BatchNorm normalizes nothing: at 3x this lr (0.01 at 8 crops) its ReLUs died within a
    # few steps on VOC and it predicted background only (BENCHMARKS.md).
    "deeplab": TrainConfig(
        recipe="deeplab",
        task="segmentation",
        optimizer="sgd",
        momentum=0.9,
        lr=0.007,
        lr_batch=16,
        schedule="poly",
        warmup_epochs=0.0,
        weight_decay=4e-5,
        label_smoothing=0.0,
        dropout=0.1,
        freeze_bn=True,
        epochs=45,
        batch_size=8,
    ),
    # SSDLite (Sandler et al. 2018, section 6.2) fine-tuned from an ImageNet backbone in the few hundred steps a CPU
    # affords: AdamW at lr 1e-3, a warm-up epoch, cosine decay, weight decay 4e-5, no label smoothing (sigmoid
    # scores). BatchNorm keeps its statistics: TFLite backbones have it folded away, and CPU batches are small. On
    # BCCD, SGD with momentum learned nothing in 5 epochs at torchvision's SSDLite rate (0.025 per 32) and diverged at
    # 4x it, where AdamW reached AP50 0.26 in 4 (BENCHMARKS.md). TF's own config (RMSProp, 200k steps of 24 on COCO)
    # is for training from scratch on a cluster.
    "ssdlite": TrainConfig(
        recipe="ssdlite",
        task="detection",
        optimizer="adamw",
        lr=0.001,
        schedule="cosine",
        warmup_epochs=1.0,
        weight_decay=4e-5,
        label_smoothing=0.0,
        freeze_bn=True,
        epochs=60,
        batch_size=16,
        input_size=320,
    ),
}

# Quantization-aware fine-tuning of trained ``weights`` on their own data: int8 fake-quantization
# through the whole network, every layer at a small learning rate, BatchNorm on its trained statistics
# (TF's QAT freezes it too), no EMA. The run ends by writing and scoring the int8 OpenVINO IR.
RECIPES["qat"] = replace(
    RECIPES["finetune"], recipe="qat", qat=True, lr=0.002, lr_batch=256, backbone_lr_mult=1.0, epochs=2, batch_size=64
)

# The embedded default: `mobilenet train` with no dataset trains on scikit-learn's digits (1,797 real
# 8x8 scans) at 32x32 in about two minutes on two CPU cores. Digits must not be mirrored.
EMBEDDED_DEFAULT = replace(
    RECIPES["modern"],
    model="mobilenet_v2_050",
    input_size=32,
    small_input=True,
    epochs=10,
    batch_size=64,
    lr=0.05,
    lr_batch=None,
    warmup_epochs=1.0,
    ema_decay=None,
    hflip=False,
    crop_scale_min=0.6,
    val_fraction=0.2,
    workers=0,
)


def make_config(recipe: str = "modern", **overrides: Any) -> TrainConfig:
    """A named recipe with fields overridden; unknown fields and recipes are clear errors."""
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}: choose one of {', '.join(RECIPES)}")
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown training settings {unknown}; see `mobilenet train --help`")
    base = RECIPES[recipe]
    if overrides.get("data") is None and base.data is None and recipe == "modern":
        base = EMBEDDED_DEFAULT
    return replace(base, **overrides)
