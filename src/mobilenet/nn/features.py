"""Feature taps: where detection and segmentation heads read a backbone, at block boundaries or inside blocks.

A tap is addressed by its index in a :class:`FeatureInfo` (timm's ``out_indices``), never by parsing
module names. Two lists exist, as timm spells them (``feature_location``):

- ``"bottleneck"``: the output of the last block of every stride, then the last bottleneck, then the
  final 1x1 conv of V2 (1280 channels). DeepLab reads the last bottleneck (320 channels for V2 1.0).
- ``"expansion"``: inside the first block of the next stride, the expanded activation before its
  strided depthwise conv (576 channels at stride 16 for V2 1.0: TF's ``layer_15/expansion_output``,
  what SSDLite reads), then the final 1x1 conv. V1's blocks expand nothing, so V1 has no such list.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from mobilenet.nn.blocks import InvertedResidual

FeatureLocation = Literal["bottleneck", "expansion"]


@dataclass(frozen=True)
class FeatureTap:
    """One feature map: the module that makes it, its channels, its reduction of the input, where it is."""

    module: str  # "features.13" (a layer's output) or "features.14.conv.0" (the expansion inside a block)
    num_chs: int
    reduction: int
    layer: int  # index of the layer in ``features`` that makes it
    location: Literal["bottleneck", "expansion", "head"]


class FeatureInfo(tuple):
    """The taps of a backbone, in order; answers timm's ``channels()``, ``reduction()``, ``module_name()``."""

    def _pick(self, attribute: str, idx: int | Sequence[int] | None) -> int | str | list:
        if idx is None:
            return [getattr(tap, attribute) for tap in self]
        if isinstance(idx, int):
            return getattr(self[idx], attribute)
        return [getattr(self[i], attribute) for i in idx]

    def channels(self, idx: int | Sequence[int] | None = None) -> int | list[int]:
        return self._pick("num_chs", idx)  # type: ignore[return-value]

    def reduction(self, idx: int | Sequence[int] | None = None) -> int | list[int]:
        return self._pick("reduction", idx)  # type: ignore[return-value]

    def module_name(self, idx: int | Sequence[int] | None = None) -> str | list[str]:
        return self._pick("module", idx)  # type: ignore[return-value]


def select_taps(all_taps: FeatureInfo, out_indices: Sequence[int] | None) -> FeatureInfo:
    """The taps at ``out_indices`` (negative counts from the end; None: all), in network order."""
    count = len(all_taps)
    indices = tuple(range(count)) if out_indices is None else tuple(out_indices)
    if not indices or any(isinstance(i, bool) or not isinstance(i, int) or not -count <= i < count for i in indices):
        raise ValueError(f"out_indices must pick from 0..{count - 1}, got {out_indices}")
    return FeatureInfo(all_taps[i] for i in sorted({i % count for i in indices}))


class MobileNetFeatures(nn.Module):
    """The feature maps of a MobileNet at the chosen taps, for detection and segmentation heads.

    It keeps the network's ``features`` (so state-dict keys, and checkpoints, stay the same) up to the
    deepest tap, and returns one map per tap, shallowest first.
    """

    def __init__(
        self,
        model: nn.Module,
        out_indices: Sequence[int] | None = None,
        feature_location: FeatureLocation = "bottleneck",
    ) -> None:
        super().__init__()
        self.config = model.config
        self.feature_location = feature_location
        self.feature_info = select_taps(model.feature_taps(feature_location), out_indices)
        self.features = nn.Sequential(*list(model.features)[: self.feature_info[-1].layer + 1])
        self.preprocessing = model.preprocessing
        self.class_names = None
        # Which layer yields a map, and whether that map is the block's expansion rather than its output.
        self.taps = {tap.layer: tap.location == "expansion" for tap in self.feature_info}

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        self.config.check_input(x)
        return run_layers(self.features, x, self.taps, carrying=self.config.shortcut == "expansion")[1]


def run_layers(
    layers: Iterable[nn.Module], x: torch.Tensor, taps: Mapping[int, bool] | None = None, carrying: bool = False
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The output of ``layers`` and the maps at ``taps`` (layer index -> whether the map is its expansion).

    ``carrying``: blocks hand their depthwise output on to the next block's expansion (the shortcut
    between expansions, :func:`~mobilenet.nn.blocks.link_expansion_shortcuts`).
    """
    taps = taps or {}
    outputs: list[torch.Tensor] = []
    carry = None
    for index, layer in enumerate(layers):
        if isinstance(layer, InvertedResidual) and (carrying or taps.get(index)):
            x, expanded, carry = layer.forward_parts(x, carry)
            if taps.get(index):
                outputs.append(expanded)
                continue
        else:
            x, carry = layer(x), None
        if index in taps:
            outputs.append(x)
    return x, outputs
