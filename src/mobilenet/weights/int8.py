"""Google's int8 arithmetic emulated on an imported float model: every activation rounded to the file's own grid.

A quantized TFLite file stores each activation as 8-bit integers with a scale and zero point. Our import runs
the dequantized weights in float, which is close to Google's runtime but not equal: it never rounds an
activation. Forward hooks that round each activation where the file does (a conv's output after its fused
activation, a residual sum, the pooled vector, a concatenation, the output) make the float model compute what
the integer runtime computes, up to its fixed-point rounding. The hooks change nothing else; remove them with
the handles returned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle


@dataclass(frozen=True)
class Quantized:
    """An activation's integer grid in the file: ``real = (q - zero_point) * scale`` with ``q`` in [qmin, qmax]."""

    scale: float
    zero_point: int
    qmin: int = 0
    qmax: int = 255

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        # q - zero_point, clamped to [qmin, qmax] - zero_point: the same integers, in one new tensor and 3 passes
        steps = torch.div(x, self.scale).round_().clamp_(self.qmin - self.zero_point, self.qmax - self.zero_point)
        return steps.mul_(self.scale)


def round_output(module: nn.Module, grid: Quantized | None) -> list[RemovableHandle]:
    """Round ``module``'s output to ``grid`` (nothing for a float tensor of the file: ``None``)."""
    if grid is None:
        return []
    return [module.register_forward_hook(lambda _module, _args, output: grid(output))]


def round_input(module: nn.Module, grid: Quantized | None) -> list[RemovableHandle]:
    """Round ``module``'s (first) input to ``grid``."""
    if grid is None:
        return []
    return [module.register_forward_pre_hook(lambda _module, args: (grid(args[0]), *args[1:]))]


def round_conv_outputs(module: nn.Module, grids: Sequence[Quantized | None]) -> list[RemovableHandle]:
    """Round the output of each convolution of ``module``, in order, where the file does: after the BatchNorm
    (folded into the file's conv) and the activation (fused into it) that follow the conv, if any."""
    layers = [m for m in module.modules() if isinstance(m, nn.Conv2d | nn.BatchNorm2d | nn.ReLU | nn.ReLU6)]
    ends = []
    for index, layer in enumerate(layers):
        if isinstance(layer, nn.Conv2d):
            end = index
            while end + 1 < len(layers) and not isinstance(layers[end + 1], nn.Conv2d):
                end += 1
            ends.append(layers[end])
    if len(ends) != len(grids):
        raise ValueError(f"{len(grids)} quantized convolutions in the file for {len(ends)} in the model")
    return [handle for end, grid in zip(ends, grids, strict=True) for handle in round_output(end, grid)]


def round_residual_sums(blocks: nn.Module, grids: Sequence[Quantized | None]) -> list[RemovableHandle]:
    """Round the output of each block with a residual sum (the file's ADD ops, in order)."""
    adding = [m for m in blocks.modules() if getattr(m, "use_res_connect", False)]
    if len(adding) != len(grids):
        raise ValueError(f"{len(grids)} residual sums in the file for {len(adding)} in the model")
    return [handle for block, grid in zip(adding, grids, strict=True) for handle in round_output(block, grid)]
