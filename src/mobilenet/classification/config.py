"""Classification's own training settings and its recipes: torch-free, read by the command line and the registry.

The registered classifiers are :data:`mobilenet.nn.variants.MODELS` (every published width of V1 and V2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

from mobilenet.training.config import TrainConfig, refuse, setting

TASK = "classification"


@dataclass(frozen=True)
class ClassificationSettings:
    """What only a classifier's training uses; the rest is :class:`~mobilenet.training.config.TrainConfig`'s."""

    small_input: bool | None = setting(
        None,
        "the stem and first stride-2 stage at stride 1, for 32x32 images such as CIFAR's (none: the --weights "
        "file's, else false)",
    )
    # The paper's ablations (Figure 6): ReLU6 on V2's projections; the residual between expansions, or none.
    linear_bottleneck: bool | None = setting(
        None,
        "false: ReLU6 after V2's projections, the paper's Figure 6a ablation (none: the --weights file's, else true)",
    )
    shortcut: Literal["bottleneck", "expansion", "none"] | None = setting(
        None,
        "where V2's residuals join: bottleneck (the paper's), expansion or none, Figure 6b (none: the "
        "--weights file's, else bottleneck)",
    )
    dropout: float = setting(0.2, "dropout before the classifier")
    label_smoothing: float = setting(0.1, "label smoothing of the cross-entropy")
    mixup: float = setting(0.0, "mixup's Beta(alpha, alpha) mixing of image pairs (0: off)")
    cutmix: float = setting(0.0, "cutmix's Beta(alpha, alpha) box pasting (0: off; with mixup, one at random)")
    crop_scale_min: float = setting(0.08, "the random-resized crop's smallest area, as a fraction of the image")

    def __post_init__(self) -> None:
        problems = [
            (not 0 <= self.dropout < 1, "dropout must be in [0, 1)"),
            (not 0 <= self.label_smoothing < 1, "label-smoothing must be in [0, 1)"),
            (self.mixup < 0 or self.cutmix < 0 or not math.isfinite(self.mixup + self.cutmix),
             "mixup and cutmix must be >= 0"),
            (not 0 < self.crop_scale_min <= 1, "crop-scale-min must be in (0, 1]"),
        ]  # fmt: skip
        refuse(problems)


def recipe(name: str, **fields) -> TrainConfig:
    """A classification recipe: ``fields`` of :class:`TrainConfig`, and of :class:`ClassificationSettings` in
    ``options``."""
    return TrainConfig(recipe=name, task=TASK, **fields)


RECIPES: dict[str, TrainConfig] = {
    # Sandler et al. 2018, section 6.1, as TF-slim trains it: RMSProp (decay and momentum 0.9), lr 0.045
    # per 96 images decayed x0.98 per epoch, weight decay 4e-5 on convolutions, label smoothing, EMA.
    "paper": recipe(
        "paper", optimizer="rmsprop", lr=0.045, lr_batch=96, schedule="exponential", lr_decay=0.98,
        weight_decay=4e-5, ema_decay=0.9999, epochs=300, batch_size=96, options={"label_smoothing": 0.1},
    ),
    # torchvision's reference recipe for mobilenet_v2: SGD, lr 0.045, x0.98 every epoch, 4e-5 weight decay.
    "torchvision": recipe(
        "torchvision", optimizer="sgd", lr=0.045, schedule="exponential", lr_decay=0.98, weight_decay=4e-5,
        decay_norm_and_bias=True, epochs=300, batch_size=256, options={"label_smoothing": 0.0},
    ),
    # Warm-up and cosine decay, label smoothing, no decay on norms and biases, EMA.
    "modern": recipe(
        "modern", optimizer="sgd", lr=0.1, lr_batch=256, schedule="cosine", warmup_epochs=1.0, weight_decay=4e-5,
        ema_decay=0.999, epochs=150, batch_size=256, options={"label_smoothing": 0.1},
    ),
    # From pretrained weights: a new classifier for the dataset, the backbone at a tenth of the lr, and
    # BatchNorm on its stored statistics: TFLite weights have it folded away (mean 0, var 1), and the
    # statistics of a small fine-tuning batch would replace the function the weights were trained for.
    "finetune": recipe(
        "finetune", optimizer="sgd", lr=0.01, schedule="cosine", warmup_epochs=0.0, backbone_lr_mult=0.1,
        freeze_bn=True, weight_decay=4e-5, epochs=5, batch_size=32,
        options={"label_smoothing": 0.1, "dropout": 0.2, "crop_scale_min": 0.35},
    ),
}  # fmt: skip

# Quantization-aware fine-tuning of trained ``weights`` on their own data: int8 fake-quantization
# through the whole network, every layer at a small learning rate, BatchNorm on its trained statistics
# (TF's QAT freezes it too), no EMA. The run ends by writing and scoring the int8 OpenVINO IR.
RECIPES["qat"] = replace(
    RECIPES["finetune"], recipe="qat", qat=True, lr=0.002, lr_batch=256, backbone_lr_mult=1.0, epochs=2, batch_size=64
)

# The embedded default: `mobilenet train` with no dataset trains on scikit-learn's digits (1,797 real
# 8x8 scans) at 32x32 in about two minutes on two CPU cores. Digits must not be mirrored.
DIGITS = replace(
    RECIPES["modern"],
    model="mobilenet_v2_050",
    input_size=32,
    epochs=10,
    batch_size=64,
    lr=0.05,
    lr_batch=None,
    warmup_epochs=1.0,
    ema_decay=None,
    hflip=False,
    val_fraction=0.2,
    workers=0,
    options={"label_smoothing": 0.1, "small_input": True, "crop_scale_min": 0.6},
)
