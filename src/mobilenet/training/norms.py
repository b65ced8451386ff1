"""Which BatchNorms keep their statistics under ``freeze_bn``: those that were given statistics to keep.

Fine-tuning freezes BatchNorm's running statistics because a CPU's batches are too small to estimate them anew,
and because a TFLite file's are folded into its convolutions. A layer the run adds (a new head) has nothing to
keep: PyTorch's initial statistics, mean 0 and variance 1, that nobody estimated. Frozen, such a norm normalizes
nothing, and on VOC the new DeepLab head's ReLUs died within ten steps (BENCHMARKS.md); it learns its statistics
instead, over a batch's many pixels or boxes. Whatever a weights file gave (trained statistics, or the identity
TFLite's folding leaves, whose variance is 1 - eps) is kept; with micro-batches of one image, every norm is (one
value per channel teaches nothing). The choice is made once, on the model as the run builds it, so that a resumed
run makes the same one.
"""

from __future__ import annotations

import torch
from torch import nn


def has_initial_statistics(norm: nn.modules.batchnorm._BatchNorm) -> bool:
    """Whether a BatchNorm's running statistics are still PyTorch's initial ones (mean 0, variance 1)."""
    if norm.running_mean is None or norm.running_var is None:  # track_running_stats=False: batch statistics
        return True
    return bool(torch.all(norm.running_mean == 0) and torch.all(norm.running_var == 1))


def frozen_norms(model: nn.Module, freeze_bn: bool, micro_batch: int) -> list[nn.Module]:
    """The BatchNorms that keep their running statistics in training: with ``freeze_bn``, those that were given some;
    all of them when a micro-batch holds one image, whose norms after a global pooling (DeepLab's image pooling) or
    on a 1x1 map (SSD's last layers) would see one value per channel, from which no statistics can be learned."""
    if not freeze_bn:
        return []
    norms = [module for module in model.modules() if isinstance(module, nn.modules.batchnorm._BatchNorm)]
    return norms if micro_batch < 2 else [norm for norm in norms if not has_initial_statistics(norm)]


def describe_norms(model: nn.Module, frozen: list[nn.Module]) -> dict[str, int]:
    """How many BatchNorms keep their statistics and how many learn them, for the run's summary."""
    count = sum(isinstance(module, nn.modules.batchnorm._BatchNorm) for module in model.modules())
    return {"kept": len(frozen), "learned": count - len(frozen)}
