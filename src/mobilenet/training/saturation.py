"""Layers that stopped passing anything on: per activation, the channels whose output is one number at every
position of every image.

A ReLU6 pushed to 0 or 6 everywhere (a ReLU to 0) gets no gradient to leave that state. When every channel of a
layer is there, its output no longer depends on the image, and nothing above it can learn from the image:
fine-tuning SSDLite's folded TFLite backbone with AdamW at the head's rate did that to the last layer on one seed
of three (BENCHMARKS.md, "Why a seed stalled"). The trainer counts these channels on the validation images after
every epoch and says when a whole layer has stopped.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.distributed as dist
from torch import nn

ACTIVATIONS = (nn.ReLU, nn.Hardtanh)  # Hardtanh: ReLU6's class
# Outputs per channel before a layer is counted at all: a tiny model's last 1x1 maps on two or three images can be
# all zero by chance (the test suite's one-epoch detectors were).
ENOUGH_VALUES = 16
# The trainer's grid: every 4th row and column costs 7% of a validation forward pass's CPU time (torch's profiler,
# MobileNetV2 1.0, batch 8 at 224, one thread; every position: 14%).
TRAINING_EVERY = 4


def layer_name(name: str, model: nn.Module) -> str:
    """A module's name as people know its layer: the activation that ends a conv + norm + activation block is named
    by the block ("features.18", not "features.18.2")."""
    parent, _, _ = name.rpartition(".")
    module, block = model.get_submodule(name), model.get_submodule(parent)
    ends_block = isinstance(block, nn.Sequential) and len(block) > 0 and block[-1] is module
    return parent if parent and isinstance(module, ACTIVATIONS) and ends_block else name


class ConstantChannels:
    """While open (``with``), the lowest and highest output of each channel of every activation of ``model``
    (its ``layers`` only, by module name, if given) over everything the model runs; at every ``every``-th row and
    column only, if more than 1 (a channel stuck everywhere is stuck there, and at 4 the count costs a sixteenth)."""

    def __init__(self, model: nn.Module, layers: list[str] | None = None, every: int = 1) -> None:
        names = layers or [name for name, module in model.named_modules() if isinstance(module, ACTIVATIONS)]
        self.model, self.names, self.every = model, names, every
        self.lowest: dict[str, torch.Tensor] = {}
        self.highest: dict[str, torch.Tensor] = {}
        self.values: dict[str, int] = {}  # outputs seen per channel
        self.reused: set[str] = set()  # modules run on different channel counts (one module used twice): not counted
        self.handles: list[torch.utils.hooks.RemovableHandle] = []

    def record(self, name: str) -> Callable[[nn.Module, tuple, torch.Tensor], None]:
        """The forward hook that folds one output of module ``name`` into its channels' lowest and highest."""

        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            # A grid of every ``every``-th row and column, centred (a corner sees the padding most); copied first:
            # CPU reductions over a strided or channels-last view cost a pass over the whole map.
            grid = [slice((size - 1) % self.every // 2, None, self.every) for size in output.shape[2:]]
            sampled = output.detach()[(..., *grid)].contiguous()
            others = [0, *range(2, output.dim())]  # every dimension but the channels'
            lowest, highest = sampled.amin(others).float(), sampled.amax(others).float()
            if name in self.lowest and self.lowest[name].shape != lowest.shape:
                self.reused.add(name)
            elif name in self.lowest:
                lowest, highest = torch.minimum(lowest, self.lowest[name]), torch.maximum(highest, self.highest[name])
            self.lowest[name], self.highest[name] = lowest, highest
            self.values[name] = self.values.get(name, 0) + sampled.numel() // sampled.shape[1]

        return hook

    def __enter__(self) -> ConstantChannels:
        self.handles = [self.model.get_submodule(name).register_forward_hook(self.record(name)) for name in self.names]
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []

    def counts(self, device: torch.device) -> dict[str, tuple[int, int]]:
        """Per layer (see :func:`layer_name`) that saw ``ENOUGH_VALUES`` outputs per channel: (channels with one output
        throughout, channels); over every process of a distributed run (``device``: the one its collectives use),
        nothing if one of them ran nothing."""
        distributed = dist.is_available() and dist.is_initialized()
        ran = torch.tensor(int(all(name in self.lowest for name in self.names)), device=device)
        if distributed:
            dist.all_reduce(ran, dist.ReduceOp.MIN)
        if not ran:
            return {}
        result = {}
        for name in self.names:
            lowest, highest = self.lowest[name].clone(), self.highest[name].clone()
            values = torch.tensor(self.values[name], device=device)
            if distributed:
                dist.all_reduce(lowest, dist.ReduceOp.MIN)
                dist.all_reduce(highest, dist.ReduceOp.MAX)
                dist.all_reduce(values)
            if values >= ENOUGH_VALUES and name not in self.reused:
                result[layer_name(name, self.model)] = (int((highest == lowest).sum()), lowest.numel())
        return result


def stopped_layers(counts: dict[str, tuple[int, int]]) -> list[str]:
    """The layers whose every channel gave one output throughout: their output does not depend on the input."""
    return [name for name, (constant, channels) in counts.items() if constant == channels]
