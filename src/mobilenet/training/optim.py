"""Optimizers, learning-rate schedules and the weights' moving average, as the recipes name them."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from mobilenet.training.config import TrainConfig

# The pretrained part, which takes ``backbone_lr_mult`` of the lr (when training starts from weights) while the rest
# (a classifier, a detector's or DeepLab's head) is new and takes the full lr: a classifier's ``features``, a task
# model's ``backbone``.
BACKBONE_PREFIXES = ("features.", "backbone.")
POLY_POWER = 0.9  # DeepLab's `learning_power`: lr x (1 - step / total) ** 0.9


def build_optimizer(
    config: TrainConfig, model: nn.Module, no_weight_decay: Callable[[str], bool] = lambda name: False
) -> torch.optim.Optimizer:
    """Parameter groups: head vs backbone (``backbone_lr_mult``), and with vs without weight decay.

    ``no_weight_decay(name)`` marks parameters that are not the network's (a hook's, such as quantizers' ranges).
    """
    lr = config.scaled_lr()
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:  # frozen: a hook's flags (quantizers' bit widths, say)
            continue
        head = not name.startswith(BACKBONE_PREFIXES)
        # Conv and linear weights decay; norms and biases do not, nor the parameters of hooks.
        decay = (param.dim() > 1 or config.decay_norm_and_bias) and not no_weight_decay(name)
        groups.setdefault((head, decay), []).append(param)
    param_groups = [
        {
            "params": params,
            "lr": lr if head else config.backbone_lr(),
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
    span = max(config.epochs - config.warmup_epochs, 1e-9)
    done = min(progress / span, 1.0)
    if config.schedule == "cosine":
        decayed = 0.5 * (1 + math.cos(math.pi * done))
    elif config.schedule == "poly":  # DeepLab's polynomial decay, per step
        decayed = (1 - done) ** POLY_POWER
    else:
        raise ValueError(f"unknown schedule {config.schedule!r}: use exponential, cosine or poly")
    return config.min_lr_ratio + (1 - config.min_lr_ratio) * decayed


def build_schedule(
    config: TrainConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(config, step, steps_per_epoch))


def ema_update(decay: float) -> Callable[[list[torch.Tensor], list[torch.Tensor], torch.Tensor], None]:
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
