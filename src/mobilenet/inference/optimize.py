"""The fastest pure-PyTorch inference model: BatchNorm folded, channels-last, optionally compiled or bf16."""

from __future__ import annotations

import contextlib
import copy
import itertools
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from mobilenet.utils.machine import bf16_supported


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode with every BatchNorm folded into the convolution before it.

    Each ``Conv2d`` (including :class:`~mobilenet.nn.layers.Conv2dSame`, which keeps its TensorFlow
    padding) directly followed by a ``BatchNorm2d`` in the same ``nn.Sequential`` gets the norm's
    running statistics folded into its weight and a bias; the norm becomes ``nn.Identity``, so the
    layer indices (and ``feature_info``) stay valid, and keeps the norm's forward hooks (an int8 file's emulation
    rounds there). The input model is left untouched.
    """
    folded = copy.deepcopy(model).eval()
    for module in folded.modules():
        if not isinstance(module, nn.Sequential):
            continue
        children = list(module.named_children())
        for (_, conv), (norm_name, norm) in itertools.pairwise(children):
            if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
                _fold_into(conv, norm)
                identity = nn.Identity()
                identity._forward_hooks.update(norm._forward_hooks)
                setattr(module, norm_name, identity)
    return folded


@torch.no_grad()
def _fold_into(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> None:
    if not norm.track_running_stats or norm.running_var is None or norm.running_mean is None:
        raise ValueError("cannot fold a BatchNorm without running statistics: build it with track_running_stats=True")
    # In float64, so that folding adds no rounding beyond the final cast back to the conv's dtype.
    std = (norm.running_var.double() + norm.eps).sqrt()
    gamma = norm.weight.double() if norm.affine else torch.ones_like(std)
    beta = norm.bias.double() if norm.affine else torch.zeros_like(std)
    scale = gamma / std
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(std)
    dtype = conv.weight.dtype
    conv.weight.copy_((conv.weight.double() * scale.view(-1, 1, 1, 1)).to(dtype))
    conv.bias = nn.Parameter(((bias - norm.running_mean.double()) * scale + beta).to(dtype), requires_grad=False)


# A large batch runs in slices of this many images, layer after layer within a slice, so that a slice's
# activations stay in cache: a whole batch of 32 at 224 streams up to 38 MB per layer through memory, and
# oneDNN's depthwise and 1x1 convolutions are then memory-bound. V2 1.0@224, batch 32, 2 threads, quiet:
# whole batch 80 images/s, slices of 1: 89, 2: 127, 4: 134, 8: 115 (ONNX Runtime: 192) -- BENCHMARKS.md.
SUB_BATCH: int | None = 4


class OptimizedModel(nn.Module):
    """Inference-only wrapper: feeds the network channels-last (and bf16), returns float32 outputs.

    It keeps the source model's ``config``, ``class_names``, ``preprocessing`` (and a detector's ``kind`` and
    ``anchors``), so it can stand in for the model wherever only its outputs are needed.
    """

    def __init__(
        self,
        network: nn.Module,
        source: nn.Module,
        channels_last: bool,
        dtype: torch.dtype,
        compile: bool,
        sub_batch: int | None = None,
    ) -> None:
        super().__init__()
        self.network = network
        self.channels_last, self.dtype, self.sub_batch = channels_last, dtype, sub_batch
        # dynamic=False: otherwise the second batch size recompiles with a symbolic batch dimension,
        # which is slower and defeats freezing's constant shapes. A compiled bound method rather than
        # a compiled module, so that the network is not registered twice.
        self.run: Callable[[torch.Tensor], Any] = network.forward
        self.compiled = compile
        if compile:
            import torch._inductor.config

            self.run = torch.compile(network.forward, dynamic=False)
        for name in ("config", "class_names", "preprocessing", "feature_info", "kind", "anchors"):
            if hasattr(source, name):
                setattr(self, name, getattr(source, name))

    def forward(self, x: torch.Tensor) -> Any:
        # Only a 4-d batch can be channels-last; anything else reaches the model's own input check.
        channels_last = self.channels_last and x.dim() == 4
        x = x.to(self.dtype, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        # Freezing (weights as constants, prepacked for oneDNN) is what makes inductor fast on CPU;
        # ``options={"freezing": True}`` was silently ignored, the config flag is not. Patched per call
        # (it costs microseconds) because each new batch size compiles on its first call.
        freezing = torch._inductor.config.patch(freezing=True) if self.compiled else contextlib.nullcontext()
        with torch.inference_mode(), freezing:
            if self.sub_batch and x.dim() == 4 and len(x) > self.sub_batch:
                parts = [self.run(part) for part in x.split(self.sub_batch)]
                tensor = isinstance(parts[0], torch.Tensor)
                out = torch.cat(parts) if tensor else [torch.cat(maps) for maps in zip(*parts, strict=True)]
            else:
                out = self.run(x)
        if isinstance(out, torch.Tensor):
            return out.float()
        return [o.float() for o in out]  # features_only: one map per stage


def optimize(
    model: nn.Module,
    compile: bool = False,
    bf16: bool = False,
    channels_last: bool = True,
    sub_batch: int | None = SUB_BATCH,
) -> OptimizedModel:
    """The best pure-PyTorch inference model for ``model``: BatchNorm folded into the convolutions, eval mode and no
    autograd, channels-last memory (what oneDNN's convolutions run fastest in). Outputs are always float32.

    Args:
        model: any model of the package.
        compile: add ``torch.compile`` with freezing and a static shape per batch size (the first call of each
            batch size compiles).
        bf16: run in bfloat16, on CPUs that support it natively (it raises on others).
        channels_last: feed the network channels-last.
        sub_batch: run batches larger than this in slices of this many images (None: whole), see ``SUB_BATCH``.

    Returns:
        An :class:`OptimizedModel`, which keeps the model's config, class names and preprocessing.
    """
    if bf16 and not bf16_supported():
        raise ValueError("this CPU has no native bf16 (AVX512-BF16 or AMX): use bf16=False")
    dtype = torch.bfloat16 if bf16 else torch.float32
    network = fold_batchnorm(model).requires_grad_(False).to(dtype)
    if channels_last:
        network = network.to(memory_format=torch.channels_last)
    return OptimizedModel(network, model, channels_last, dtype, compile, sub_batch).eval()
