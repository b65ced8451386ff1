"""A training run's settings: one typed record, saved with the run as ``config.json``.

:class:`TrainConfig` holds what every run has (data, model, optimisation, schedule, EMA, precision, checkpoints,
processes); what only one task uses (mixup for a classifier, the crop scales of a segmenter, the anchors of a
detector) is that task's own settings record, kept in ``options`` by name and read with :func:`read_options`.
Every field of both is a flag (``--lr 0.01``, ``--mixup 0.2``), and each says what it does in its metadata, so that
a run can always be told and repeated. Torch-free, so that ``mobilenet train --help`` is instant.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, TypeVar

Settings = TypeVar("Settings")


def setting(default: Any, help: str) -> Any:
    """A settings field with its default and what it does (the help of its flag)."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class TrainConfig:
    """The settings every run has; ``options`` holds the task's own (see the module's docstring)."""

    recipe: str = setting("custom", "the named recipe the run started from")
    task: str | None = setting(None, "what is learned, a registered task's name (none: the recipe's task)")
    data: str | None = setting(None, "the training data: a folder or file the task reads (none: a demo set, if the "
                               "task has one)")  # fmt: skip
    val_data: str | None = setting(None, "the validation data (none: --data's own val split, else --val-fraction "
                                   "of --data)")  # fmt: skip
    val_fraction: float = setting(0.1, "the share of --data held out for validation when it has no split of its own")
    model: str | None = setting(None, "the registered model to train (none: the --weights file's, else the task's "
                                "default)")  # fmt: skip
    width_mult: float | None = setting(None, "the width multiplier alpha (none: the model name's)")
    input_size: int | None = setting(None, "the square input size in pixels, the crop size of dense tasks (none: the "
                                     "--weights file's, else the task's default)")  # fmt: skip
    weights: str | None = setting(None, "start from these weights (any file mobilenet loads, or a published name): "
                                  "a new head where the task's classes differ")  # fmt: skip
    keep_class_rows: bool = setting(True, "a new last layer starts each class that --weights also predicts, by name, "
                                    "from its row, where every class has a start (false: every row new)")  # fmt: skip
    merge_classes: str | None = setting(None, "new classes whose rows start from several of --weights' merged, "
                                        "NEW=OLD+OLD;...: vehicle=car+bus;pet=cat+dog (none: no merges)")  # fmt: skip
    epochs: int = setting(10, "passes over the training data")
    batch_size: int = setting(64, "images per optimizer step, all processes together, after accumulation")
    accum_steps: int = setting(1, "micro-batches accumulated per optimizer step")
    optimizer: Literal["sgd", "rmsprop", "adamw"] = setting("sgd", "the optimizer")
    lr: float = setting(0.1, "the learning rate (per --lr-batch images when that is set)")
    lr_batch: int | None = setting(None, "scale --lr linearly with --batch-size, --lr being per this many images "
                                   "(none: --lr as it is)")  # fmt: skip
    momentum: float = setting(0.9, "SGD's and RMSProp's momentum")
    rmsprop_alpha: float = setting(0.9, "RMSProp's decay of the squared gradients (TF-slim's 0.9)")
    rmsprop_eps: float = setting(1e-3, "RMSProp's epsilon: TF-slim trains with 1e-3 (PyTorch's 1e-8 is unstable)")
    weight_decay: float = setting(4e-5, "L2 weight decay")
    decay_norm_and_bias: bool = setting(False, "also decay BatchNorm and bias parameters (false: conv and linear "
                                        "weights only)")  # fmt: skip
    schedule: Literal["exponential", "cosine", "poly"] = setting(
        "cosine",
        "the learning-rate schedule after warm-up: exponential (staircase), cosine, or poly, (1 - step / total) ** 0.9",
    )
    lr_decay: float = setting(0.98, "exponential: the factor per --decay-epochs")
    decay_epochs: float = setting(1.0, "exponential: epochs per decay step")
    warmup_epochs: float = setting(0.0, "epochs of linear warm-up from 0 to --lr")
    min_lr_ratio: float = setting(0.0, "cosine and poly: the floor, as a fraction of --lr")
    backbone_lr_mult: float = setting(1.0, "the backbone's learning rate as a fraction of the new head's, when it "
                                      "starts from --weights (from scratch it takes the head's)")  # fmt: skip
    freeze_bn: bool = setting(False, "BatchNorm keeps the running statistics its weights gave (small batches, or "
                              "folded TF weights); a new layer's norms learn theirs")  # fmt: skip
    ema_decay: float | None = setting(None, "an exponential moving average of the weights, evaluated and saved "
                                      "(none: no EMA)")  # fmt: skip
    qat: bool = setting(False, "quantization-aware: train through int8 fake-quantization (NNCF) and write the int8 "
                        "OpenVINO IR (tasks that offer calibration images)")  # fmt: skip
    hflip: bool = setting(True, "mirror training images at random")
    amp: bool = setting(False, "mixed precision: bfloat16 autocast on a CPU, float16 (with a grad scaler) or bfloat16 "
                        "on CUDA")  # fmt: skip
    amp_dtype: Literal["bfloat16", "float16"] = setting("bfloat16", "--amp's type on CUDA")
    channels_last: bool = setting(False, "NHWC memory layout (faster with --amp on CPUs with bf16 and on GPUs)")
    compile: bool = setting(False, "torch.compile the model (minutes of compilation)")
    sync_bn: bool = setting(False, "synchronise BatchNorm statistics across processes (CUDA only)")
    seed: int = setting(0, "seeds the initial weights, the data order and every augmentation")
    workers: int = setting(2, "data loaders per training process (0: load in the process itself)")
    loader: Literal["processes", "threads"] = setting(
        "processes",
        "--workers as worker processes (any task), or threads of the training process (nothing copied between "
        "processes: more images/s for work outside the GIL, as the classifier's JPEG crops); the batches are the same",
    )
    threads: int | None = setting(
        None,
        "CPU threads per training process (none: PyTorch's count at the start, recorded in config.json; the figures "
        "depend on it, and on the CPU)",
    )
    device: str = setting("auto", "cpu, cuda, cuda:N, or auto (CUDA when there is one)")
    checkpoint_every: int = setting(0, "optimizer steps between mid-epoch checkpoints (0: at epoch ends only)")
    out: str | None = setting(None, "the run directory, which must not exist yet (none: runs/<recipe>-<time>)")
    mlflow_uri: str | None = setting(None, "also log to MLflow: a folder (its file store) or a tracking server's URI")
    mlflow_experiment: str = setting("mobilenet", "the MLflow experiment's name")
    options: dict[str, Any] = field(default_factory=dict, metadata={"help": "the task's own settings, by name"})

    def __post_init__(self) -> None:
        """Refuse values no run can use, in one line that names the flag and what it takes."""
        problems = [
            (self.epochs < 1, "epochs must be at least 1"),
            (self.batch_size < 1, "batch-size must be at least 1"),
            (self.accum_steps < 1, "accum-steps must be at least 1"),
            (not self.lr > 0 or not math.isfinite(self.lr), "lr must be a finite number > 0"),
            (self.lr_batch is not None and self.lr_batch < 1, "lr-batch must be at least 1 (or none)"),
            (not 0 < self.val_fraction < 1, "val-fraction must be between 0 and 1 (exclusive)"),
            (self.ema_decay is not None and not 0 < self.ema_decay < 1, "ema-decay must be in (0, 1), or none"),
            (self.width_mult is not None and not self.width_mult > 0, "width-mult must be > 0"),
            (self.input_size is not None and self.input_size < 8, "input-size must be at least 8"),
            (self.workers < 0, "workers must be 0 or more"),
            (self.threads is not None and self.threads < 1, "threads must be at least 1 (or none)"),
            (self.checkpoint_every < 0, "checkpoint-every must be 0 (epoch ends only) or more"),
            (self.weight_decay < 0, "weight-decay must be >= 0"),
            (self.merge_classes is not None and self.weights is None, "merge-classes needs --weights, whose classes "
             "it merges"),
        ]  # fmt: skip
        refuse(problems)
        self.class_merges()  # a malformed --merge-classes fails here, before any weights are read

    def class_merges(self) -> dict[str, tuple[str, ...]]:
        """``merge_classes`` read: each new class, and the classes of ``weights`` its row starts from."""
        merges: dict[str, tuple[str, ...]] = {}
        for item in self.merge_classes.split(";") if self.merge_classes else ():  # ImageNet's names hold commas
            new, equals, olds = (part.strip() for part in item.partition("="))
            sources = tuple(old.strip() for old in olds.split("+"))
            if not (new and equals and all(sources)) or new in merges:
                raise ValueError(
                    f"--merge-classes takes NEW=OLD+OLD;... with each new class once (vehicle=car+bus;pet=cat+dog), "
                    f"not {item.strip()!r}"
                )
            merges[new] = sources
        return merges

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, path: str | Path) -> TrainConfig:
        """A saved config. Runs saved before tasks had settings of their own kept them beside the common ones:
        those names are moved into ``options``, where the task takes the ones it has (see :func:`read_options`)."""
        data: dict[str, Any] = json.loads(Path(path).read_text())
        known = {f.name for f in fields(cls)}
        config = cls(**{key: value for key, value in data.items() if key in known})
        if "options" not in data:
            config = replace(config, options={key: value for key, value in data.items() if key not in known})
        return config

    def scaled_lr(self) -> float:
        return self.lr * (self.batch_size / self.lr_batch if self.lr_batch else 1.0)

    def backbone_lr(self) -> float:
        """The backbone's learning rate: ``backbone_lr_mult`` of the rest's where it starts from ``weights``; from
        scratch it is as new as the head and takes the same rate."""
        return self.scaled_lr() * (self.backbone_lr_mult if self.weights is not None else 1.0)


def refuse(problems: list[tuple[bool, str]]) -> None:
    """Raise, in one line naming the flag and what it takes, the first of ``problems`` (wrong, message) that is."""
    for wrong, message in problems:
        if wrong:
            raise ValueError(f"--{message}")


def flag(name: str) -> str:
    return f"--{name.replace('_', '-')}"


def read_options(settings: type[Settings], options: dict[str, Any], task: str, lenient: bool = False) -> Settings:
    """The task's settings record from ``options`` (its fields by name), with its own checks.

    A name it does not have is refused in one line, or with ``lenient`` (a resumed run, whose saved config may
    hold the settings of a former layout) left out.
    """
    known = {f.name for f in fields(settings)}
    unknown = sorted(set(options) - known)
    if unknown and not lenient:
        raise ValueError(f"{flag(unknown[0])} is not a setting of the {task} task: it takes {_names(known)}")
    return settings(**{key: value for key, value in options.items() if key in known})


def _names(names: set[str]) -> str:
    return ", ".join(flag(name) for name in sorted(names)) or "none of its own"


# What a resumed run may change: how long it goes on, and where and how fast it runs; nothing that shapes
# the result of the steps already taken.
RESUMABLE_CHANGES = ("epochs", "workers", "loader", "device", "checkpoint_every")


def check_resumable(changes: dict[str, Any]) -> None:
    """Refuse, in one line, a change that a resumed run may not make."""
    fixed = sorted(set(changes) - set(RESUMABLE_CHANGES))
    if fixed:
        allowed = ", ".join(flag(name) for name in RESUMABLE_CHANGES)
        raise ValueError(
            f"{flag(fixed[0])} cannot change when resuming (only {allowed} can): the run goes on "
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
    except (json.JSONDecodeError, TypeError, ValueError) as error:
        raise ValueError(f"{path} is damaged ({error}): the run cannot be resumed") from None
    return replace(config, out=str(run_dir), **changes)
