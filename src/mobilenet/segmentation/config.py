"""A Mobile DeepLabv3's settings as one frozen record (saved with its weights), the registered models, and the
segmentation task's own training settings and recipe.

Torch-free, as :mod:`mobilenet.nn.config` is: the command line lists and validates models without PyTorch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from mobilenet.nn.config import ModelConfig, Padding
from mobilenet.training.config import TrainConfig, refuse, setting

TASK = "segmentation"
KIND = "deeplabv3"  # what our weights files of this model say they hold
# What `mobilenet segment --out DIR` writes per image: the mask (a palette PNG whose pixels are the classes) and
# the overlay; {name} is the image's stem, made distinct where stems repeat.
OUTPUTS = ("{name}.png", "{name}_overlay.png")
# DeepLab's atrous rates at output stride 16 (`--atrous_rates=6,12,18`); output stride 8 doubles them.
ATROUS_RATES_OS16 = (6, 12, 18)
DEEPLAB_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)  # DeepLab's --eval_scales for Table 7's "MF" rows
TF_HEAD_BN_EPS = 1e-5  # TensorFlow's DeepLab normalises its head at 1e-5, its MobileNetV2 backbone at 1e-3


@dataclass(frozen=True)
class DeepLabConfig:
    """Everything that decides a Mobile DeepLabv3's shape; saved with its weights."""

    arch: str = "mobilenet_v2"
    width_mult: float = 1.0
    divisible_by: int = 8  # DeepLab's TF code rounds widths below 1.0 with 1
    num_classes: int = 21  # PASCAL VOC: background and 20 objects
    in_chans: int = 3
    input_size: int = 513  # DeepLab's crop size; any size the backbone takes runs
    output_stride: int = 16
    aspp: bool = False  # the three 3x3 atrous branches of full ASPP (Table 7's last row)
    head_channels: int = 256
    dropout: float = 0.1  # DeepLab keeps 0.9 of the projection's activations
    padding: Padding = "symmetric"  # "tf_same" for TensorFlow-trained weights
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1
    head_bn_eps: float | None = None  # None: bn_eps. TF's DeepLab head uses 1e-5 on a backbone of 1e-3

    def __post_init__(self) -> None:
        if self.output_stride not in (8, 16):
            raise ValueError(f"output_stride must be 8 or 16 for DeepLab, got {self.output_stride}")
        if self.num_classes < 1 or self.head_channels < 1:
            raise ValueError("num_classes and head_channels must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        self.backbone()  # the backbone's own checks (arch, width, input size)

    def backbone(self) -> ModelConfig:
        """The MobileNet the model reads, without a classifier."""
        return ModelConfig(
            arch=self.arch, width_mult=self.width_mult, divisible_by=self.divisible_by, num_classes=0,
            in_chans=self.in_chans, input_size=self.input_size, output_stride=self.output_stride,
            padding=self.padding, bn_eps=self.bn_eps, bn_momentum=self.bn_momentum,
        )  # fmt: skip

    @property
    def atrous_rates(self) -> tuple[int, ...]:
        return tuple(rate * 16 // self.output_stride for rate in ATROUS_RATES_OS16) if self.aspp else ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# The registered segmentation models. DeepLab's TF code rounds widths below 1.0 to whole channels, not to 8.
SEGMENTATION_MODELS = {
    "deeplabv3_mobilenet_v2": DeepLabConfig(),
    "deeplabv3_mobilenet_v2_050": DeepLabConfig(width_mult=0.5, divisible_by=1),
    "deeplabv3_mobilenet_v1": DeepLabConfig(arch="mobilenet_v1"),
}


@dataclass(frozen=True)
class SegmentationSettings:
    """What only a segmenter's training uses; the rest is :class:`~mobilenet.training.config.TrainConfig`'s (its
    ``input_size`` is the training crop, DeepLab's 513 by default)."""

    dropout: float = setting(0.1, "dropout before the logits (DeepLab keeps 0.9 of the projection's activations)")
    label_smoothing: float = setting(0.0, "label smoothing of the per-pixel cross-entropy")
    output_stride: int = setting(16, "the backbone's output stride while training, 8 or 16 (DeepLab trains at 16; "
                                 "8 costs about 4x)")  # fmt: skip
    # DeepLab's min_scale_factor, max_scale_factor and scale_factor_step_size.
    min_scale_factor: float = setting(0.5, "the smallest random scale of a training pair")
    max_scale_factor: float = setting(2.0, "the largest random scale of a training pair")
    scale_factor_step: float = setting(0.25, "the step between the random scales")

    def __post_init__(self) -> None:
        problems = [
            (not 0 <= self.dropout < 1, "dropout must be in [0, 1)"),
            (not 0 <= self.label_smoothing < 1, "label-smoothing must be in [0, 1)"),
            (self.output_stride not in (8, 16), "output-stride must be 8 or 16"),
            (
                not 0 < self.min_scale_factor <= self.max_scale_factor,
                "min-scale-factor and max-scale-factor must be > 0, the min at most the max",
            ),
            (not self.scale_factor_step > 0, "scale-factor-step must be > 0"),
        ]
        refuse(problems)

    @property
    def scales(self) -> tuple[float, ...]:
        """The scales a training pair is drawn at, each equally likely."""
        span = self.max_scale_factor - self.min_scale_factor
        count = math.floor(span / self.scale_factor_step + 1e-9) + 1
        return tuple(self.min_scale_factor + self.scale_factor_step * step for step in range(count))


# Mobile DeepLabv3 fine-tuned on a user's few hundred masks, in the minutes a CPU affords (BENCHMARKS.md, "Fine-tuning
# on real masks"): AdamW at 1e-3 per 8 crops for the new head, a tenth of it for the pretrained backbone, a warm-up
# epoch, cosine decay, weight decay 4e-5, dropout 0.1 before the logits, crops of 257. BatchNorm keeps the statistics
# its weights gave (a classifier's backbone; all of a DeepLab file's) and a new head's norms learn theirs
# (training.norms). From an ImageNet classifier on VOC's 311 train pairs: 44.3% val mIoU (40% by epoch 9), where
# DeepLab's own recipe (SGD with momentum, poly from 0.007 per 16 crops, 30k steps of 16 on 10,582 images) reached
# 9.7% in 10 epochs, and 8x its rate, or AdamW at the full rate on the backbone, destroyed the backbone's features
# (background everywhere). Its settings stay one flag away: --optimizer sgd --lr 0.007 --schedule poly
# --backbone-lr-mult 1 --warmup-epochs 0.
RECIPES = {
    "deeplab": TrainConfig(
        recipe="deeplab", task=TASK, optimizer="adamw", lr=0.002, lr_batch=16, backbone_lr_mult=0.1,
        schedule="cosine", warmup_epochs=1.0, weight_decay=4e-5, freeze_bn=True, epochs=30, batch_size=8,
        input_size=257, options={"dropout": 0.1, "label_smoothing": 0.0},
    ),
}  # fmt: skip
