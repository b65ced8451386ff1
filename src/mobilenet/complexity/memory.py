"""Section 5 and Table 3: the largest tensor that must exist at each spatial resolution during inference.

The paper's argument: an inverted residual can be computed a group of expanded channels at a time
(:mod:`mobilenet.nn.streaming`), so only the narrow bottleneck tensors between blocks must ever exist
whole. MobileNetV1 has no such narrow tensors: every layer's output is materialised. Sizes are in
16-bit floats and kilobytes of 1,000 bytes, as the paper counts them; the input image is not counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mobilenet.nn.blocks import InvertedResidual
from mobilenet.nn.layers import ConvNormAct
from mobilenet.nn.model import MobileNet

BYTES_PER_VALUE = 2  # 16-bit floats, as in Table 3

# Sandler et al. 2018, Table 3, as printed: spatial size -> (max channels, memory in Kb), 224x224 input,
# width 1.0. V1's 7x7 row reads 199 although 1024 channels of 7x7 take 100 Kb; its channels agree.
PAPER_TABLE3: dict[str, dict[int, tuple[int, float]]] = {
    "mobilenet_v1": {112: (64, 1600), 56: (128, 800), 28: (256, 400), 14: (512, 200), 7: (1024, 199), 1: (1024, 2)},
    "mobilenet_v2": {112: (16, 400), 56: (32, 200), 28: (64, 100), 14: (160, 62), 7: (320, 32), 1: (1280, 2)},
}
PAPER_MAX_KB = {"mobilenet_v1": 1600, "mobilenet_v2": 400}  # ShuffleNet (2x, g=3): 600


@dataclass(frozen=True)
class MaterialisedTensor:
    """A tensor that exists whole at some point of the forward pass."""

    name: str  # the module that makes it ("features.3", "pool", "classifier")
    channels: int
    size: int  # spatial height (and width, for square inputs)

    @property
    def kilobytes(self) -> float:
        return self.channels * self.size * self.size * BYTES_PER_VALUE / 1000


@dataclass(frozen=True)
class MemoryRow:
    """The largest materialised tensor at one spatial size, beside the paper's figure where it has one."""

    size: int
    largest: MaterialisedTensor
    paper_channels: int | None
    paper_kilobytes: float | None


def materialised_tensors(model: MobileNet, resolution: int = 224, streamed: bool = True) -> list[MaterialisedTensor]:
    """Every tensor that must exist whole in one forward pass at ``resolution``, in network order.

    ``streamed`` (V2 only): expansions, depthwise outputs and the final 1x1 conv are computed a channel
    group at a time (the 1x1 conv's groups go straight into the pooling), and, as the paper's footnote
    to Table 3 says, the stem streams into the first block, which expands nothing. Unstreamed, and
    always for V1, every layer's output is materialised.
    """
    streams = streamed and any(isinstance(m, InvertedResidual) and m.has_expansion for m in model.modules())
    recorded: list[MaterialisedTensor] = []
    hooks = []

    def record(name: str):
        def hook(_module: nn.Module, _args: tuple, output: torch.Tensor) -> None:
            size = output.shape[-2] if output.dim() == 4 else 1
            recorded.append(MaterialisedTensor(name, output.shape[1], size))

        return hook

    # Streamed, only the blocks' outputs exist whole; unstreamed, also every conv + norm + act inside them.
    kinds = (InvertedResidual,) if streams else (InvertedResidual, ConvNormAct)
    for name, module in model.named_modules():
        if isinstance(module, kinds):
            hooks.append(module.register_forward_hook(record(name)))
    try:
        with torch.no_grad():
            features = model.eval().forward_features(torch.zeros(1, model.config.in_chans, resolution, resolution))
            pooled = model.forward_head(features, pre_logits=True)
            recorded.append(MaterialisedTensor("pool", pooled.shape[1], 1))
            if model.num_classes:
                recorded.append(MaterialisedTensor("classifier", model.num_classes, 1))
    finally:
        for hook in hooks:
            hook.remove()
    return recorded


def memory_table(model: MobileNet, resolution: int = 224, streamed: bool = True) -> list[MemoryRow]:
    """Table 3 for ``model``: the largest materialised tensor per spatial size, largest size first.

    The paper's figures are given beside ours for the configurations it printed (V1 and V2 at width 1.0
    and 224x224).
    """
    largest: dict[int, MaterialisedTensor] = {}
    for tensor in materialised_tensors(model, resolution, streamed):
        if tensor.size not in largest or tensor.kilobytes > largest[tensor.size].kilobytes:
            largest[tensor.size] = tensor
    config = model.config
    printed = config.width_mult == 1.0 and resolution == 224 and not config.small_input and config.output_stride == 32
    paper = PAPER_TABLE3.get(config.arch, {}) if printed and (streamed or config.arch == "mobilenet_v1") else {}
    return [
        MemoryRow(size, tensor, *paper.get(size, (None, None)))
        for size, tensor in sorted(largest.items(), key=lambda item: -item[0])
    ]
