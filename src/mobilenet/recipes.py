"""Training configurations: one typed record, and the named recipes that fill it in.

Every field can be overridden from the command line (``--lr 0.01``) and the whole record is saved
with each run (``config.json``), so a run can always be told and repeated.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal


@dataclass(frozen=True)
class TrainConfig:
    recipe: str = "modern"
    # Data: a root with train/ and val/ folders, or one folder split by val_fraction; none = embedded digits.
    data: str | None = None
    val_data: str | None = None
    val_fraction: float = 0.1
    # Model
    # None: as the ``weights`` file says, or for a new model mobilenet_v2_100, 224 and False.
    model: str | None = None
    width_mult: float | None = None  # overrides the model name's width
    input_size: int | None = None
    small_input: bool | None = None  # stem and first stride-2 stage at stride 1: for 32x32 inputs (CIFAR)
    dropout: float = 0.2
    weights: str | None = None  # start from these (any file mobilenet can load); a new classifier if classes differ
    # Optimisation
    epochs: int = 10
    batch_size: int = 64  # global: all processes together, after gradient accumulation
    accum_steps: int = 1
    optimizer: Literal["sgd", "rmsprop", "adamw"] = "sgd"
    lr: float = 0.1
    lr_batch: int | None = None  # if set, ``lr`` is per this many images and scales with batch_size
    momentum: float = 0.9
    rmsprop_alpha: float = 0.9
    rmsprop_eps: float = 1e-3  # TF-slim trains with a large epsilon; PyTorch's default 1e-8 is unstable here
    weight_decay: float = 4e-5
    decay_norm_and_bias: bool = False  # False: weight decay on conv and linear weights only
    schedule: Literal["exponential", "cosine"] = "cosine"
    lr_decay: float = 0.98  # exponential: factor per ``decay_epochs`` (staircase)
    decay_epochs: float = 1.0
    warmup_epochs: float = 0.0
    min_lr_ratio: float = 0.0  # cosine floor, as a fraction of lr
    backbone_lr_mult: float = 1.0  # < 1: the pretrained backbone learns slower than the new classifier
    freeze_bn: bool = False  # BatchNorm keeps its running statistics (small batches, or folded TF weights)
    label_smoothing: float = 0.1
    ema_decay: float | None = None  # exponential moving average of the weights, evaluated and saved
    mixup: float = 0.0  # Beta(alpha, alpha) mixing; 0 = off
    cutmix: float = 0.0
    qat: bool = False  # quantization-aware: train through int8 fake-quantization (NNCF); writes int8.xml
    # Augmentation
    crop_scale_min: float = 0.08
    hflip: bool = True
    # Runtime
    amp: bool = False  # bfloat16 autocast on CPU, float16 (with a grad scaler) or bfloat16 on CUDA
    amp_dtype: Literal["bfloat16", "float16"] = "bfloat16"
    channels_last: bool = False
    compile: bool = False
    sync_bn: bool = False  # CUDA only (PyTorch's SyncBatchNorm)
    seed: int = 0
    workers: int = 2
    device: str = "auto"
    checkpoint_every: int = 0  # optimizer steps between mid-epoch checkpoints; 0 = at epoch ends only
    out: str | None = None  # the run directory; default runs/<recipe>-<time>

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, path: str | Path) -> TrainConfig:
        data: dict[str, Any] = json.loads(Path(path).read_text())
        return cls(**data)

    def scaled_lr(self) -> float:
        return self.lr * (self.batch_size / self.lr_batch if self.lr_batch else 1.0)


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
