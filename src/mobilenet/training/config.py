"""A training run's settings: one typed record, saved with the run as ``config.json``.

Every field can be overridden from the command line (``--lr 0.01``), so a run can always be told and
repeated. Torch-free, so that ``mobilenet train --help`` is instant.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal


@dataclass(frozen=True)
class TrainConfig:
    recipe: str = "modern"
    task: str = "classification"  # what is learned: a name of ``mobilenet.tasks.TASKS``
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
    # The paper's ablations (Figure 6): ReLU6 on V2's projections; the residual between expansions or none.
    linear_bottleneck: bool | None = None
    shortcut: Literal["bottleneck", "expansion", "none"] | None = None
    dropout: float = 0.2
    # Start from these (any file mobilenet can load): a new classifier if classes differ; for segmentation, DeepLab
    # weights as they are, or a classifier whose backbone gets a new DeepLab head.
    weights: str | None = None
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
    schedule: Literal["exponential", "cosine", "poly"] = "cosine"  # poly: DeepLab's (1 - step / total) ** 0.9
    lr_decay: float = 0.98  # exponential: factor per ``decay_epochs`` (staircase)
    decay_epochs: float = 1.0
    warmup_epochs: float = 0.0
    min_lr_ratio: float = 0.0  # cosine and poly floor, as a fraction of lr
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
    mlflow_uri: str | None = None  # also log to MLflow: a folder (its file store) or a tracking server's URI
    mlflow_experiment: str = "mobilenet"

    def __post_init__(self) -> None:
        """Refuse values no run can use, in one line that names the flag and what it takes."""
        problems = [
            (self.epochs < 1, "epochs must be at least 1"),
            (self.batch_size < 1, "batch-size must be at least 1"),
            (self.accum_steps < 1, "accum-steps must be at least 1"),
            (not self.lr > 0 or not math.isfinite(self.lr), "lr must be a finite number > 0"),
            (self.lr_batch is not None and self.lr_batch < 1, "lr-batch must be at least 1 (or none)"),
            (not 0 < self.val_fraction < 1, "val-fraction must be between 0 and 1 (exclusive)"),
            (not 0 <= self.dropout < 1, "dropout must be in [0, 1)"),
            (not 0 <= self.label_smoothing < 1, "label-smoothing must be in [0, 1)"),
            (self.ema_decay is not None and not 0 < self.ema_decay < 1, "ema-decay must be in (0, 1), or none"),
            (self.width_mult is not None and not self.width_mult > 0, "width-mult must be > 0"),
            (self.input_size is not None and self.input_size < 8, "input-size must be at least 8"),
            (self.workers < 0, "workers must be 0 or more"),
            (self.checkpoint_every < 0, "checkpoint-every must be 0 (epoch ends only) or more"),
            (self.weight_decay < 0 or self.mixup < 0 or self.cutmix < 0, "weight-decay, mixup, cutmix must be >= 0"),
            (not 0 < self.crop_scale_min <= 1, "crop-scale-min must be in (0, 1]"),
        ]
        for wrong, message in problems:
            if wrong:
                raise ValueError(f"--{message}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, path: str | Path) -> TrainConfig:
        data: dict[str, Any] = json.loads(Path(path).read_text())
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})

    def scaled_lr(self) -> float:
        return self.lr * (self.batch_size / self.lr_batch if self.lr_batch else 1.0)


# What a resumed run may change: how long it goes on, and where and how fast it runs; nothing that shapes
# the result of the steps already taken.
RESUMABLE_CHANGES = ("epochs", "workers", "device", "checkpoint_every")


def check_resumable(changes: dict[str, Any]) -> None:
    """Refuse, in one line, a change that a resumed run may not make."""
    fixed = sorted(set(changes) - set(RESUMABLE_CHANGES))
    if fixed:
        allowed = ", ".join(f"--{name.replace('_', '-')}" for name in RESUMABLE_CHANGES)
        raise ValueError(
            f"--{fixed[0].replace('_', '-')} cannot change when resuming (only {allowed} can): the run goes on "
            "as it was configured; start a new run to change it"
        )


def resume_config(run_dir: str | Path, **changes: Any) -> TrainConfig:
    """The config of the run in ``run_dir``, with only ``RESUMABLE_CHANGES`` applied (``epochs`` extends it)."""
    run_dir = Path(run_dir)
    path = run_dir / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} holds no run to resume ({path.name} is missing): start one with --out")
    check_resumable(changes)
    try:
        config = TrainConfig.from_json(path)
    except (json.JSONDecodeError, TypeError) as error:
        raise ValueError(f"{path} is damaged ({error}): the run cannot be resumed") from None
    return replace(config, out=str(run_dir), **changes)
