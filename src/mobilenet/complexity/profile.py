"""Parameters and multiply-adds per layer, measured on the model as the papers count them.

Multiply-adds are those of convolutions and fully connected layers (one per weight use), the count
of both papers' tables; BatchNorm, activations, pooling and the residual additions are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import nn

from mobilenet.complexity.published import PUBLISHED_V1, PUBLISHED_V2, PublishedCell
from mobilenet.nn.blocks import InvertedResidual
from mobilenet.nn.config import ModelConfig
from mobilenet.nn.model import MobileNet, check_batch_fits, stage_rows
from mobilenet.nn.tables import ARCHITECTURES


@dataclass(frozen=True)
class LayerCost:
    """One top-level layer of the network (a row of the paper's Table 2 before grouping)."""

    name: str  # e.g. "features.3"
    operator: str  # "conv2d 3x3", "bottleneck", "dw-separable", "conv2d 1x1", "avgpool", "classifier"
    input_shape: tuple[int, int, int]  # H, W, C as the paper writes it
    out_channels: int
    expand_ratio: float | None
    stride: int
    params: int  # everything, BatchNorm included
    norm_params: int  # BatchNorm weight and bias alone
    madds: int


@dataclass(frozen=True)
class Profile:
    model: str
    width_mult: float
    resolution: int
    layers: tuple[LayerCost, ...]
    stage_sizes: tuple[int, ...] = ()  # blocks per row of the table (timm's deeper variants have more); () the table's

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def params_without_norm(self) -> int:
        return sum(layer.params - layer.norm_params for layer in self.layers)

    @property
    def madds(self) -> int:
        return sum(layer.madds for layer in self.layers)


def _weight_madds(module: nn.Module, output: torch.Tensor) -> int:
    if isinstance(module, nn.Conv2d):
        per_output = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
        return output[0].numel() * per_output
    if isinstance(module, nn.Linear):
        return module.in_features * module.out_features
    return 0


@torch.no_grad()
def module_cost(module: nn.Module, x: torch.Tensor) -> tuple[int, int]:
    """Parameters and multiply-adds (of convolution and linear weights, as the papers count) of one forward pass.

    Any module: a head of another task is counted as its backbone is.
    """
    total = [0]

    def count(layer: nn.Module, _args: tuple, output: torch.Tensor) -> None:
        total[0] += _weight_madds(layer, output)

    handles = [m.register_forward_hook(count) for m in module.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    was_training = module.training
    try:
        module.eval()
        module(x)
    finally:
        module.train(was_training)
        for handle in handles:
            handle.remove()
    return sum(p.numel() for p in module.parameters()), total[0]


def _operator(name: str, layer: nn.Module, arch: str) -> tuple[str, float | None, int]:
    if isinstance(layer, InvertedResidual):
        op = "bottleneck" if ARCHITECTURES[arch].block == "inverted_residual" else "dw-separable"
        return op, layer.expand_ratio, layer.stride
    if name == "classifier":
        return "classifier", None, 1
    conv = layer[0]
    return f"conv2d {conv.kernel_size[0]}x{conv.kernel_size[1]}", None, conv.stride[0]


@torch.no_grad()
def profile_model(model: MobileNet, resolution: int | None = None) -> Profile:
    """Run one image through ``model`` and count, per top-level layer, its parameters and MAdds."""
    config = model.config
    resolution = resolution or config.input_size
    check_batch_fits(config, 1, resolution)
    top_level = [(f"features.{i}", layer) for i, layer in enumerate(model.features)]
    if config.num_classes:
        top_level.append(("classifier", model.classifier))
    madds: dict[str, int] = {name: 0 for name, _ in top_level}
    shapes: dict[str, tuple[int, int, int]] = {}
    handles = []
    for name, layer in top_level:
        handles.append(layer.register_forward_pre_hook(partial(_record_shape, shapes, name)))
        for sub in layer.modules():
            handles.append(sub.register_forward_hook(partial(_record_madds, madds, name)))
    was_training = model.training
    try:
        model.eval()
        pool_input = _hwc(model.forward_features(torch.zeros(1, config.in_chans, resolution, resolution)))
        if config.num_classes:
            model.forward_head(torch.zeros(1, model.num_features, 1, 1))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    rows = []
    last_feature = f"features.{len(model.features) - 1}"
    for name, layer in top_level:
        operator, expand_ratio, stride = _operator(name, layer, config.arch)
        norm_params = sum(p.numel() for m in layer.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters())
        out_channels = next(
            m.out_channels if isinstance(m, nn.Conv2d) else m.out_features
            for m in reversed(list(layer.modules()))
            if isinstance(m, nn.Conv2d | nn.Linear)
        )
        params = sum(p.numel() for p in layer.parameters())
        rows.append(
            LayerCost(
                name,
                operator,
                shapes[name],
                out_channels,
                expand_ratio,
                stride,
                params,
                norm_params,
                madds[name],
            )
        )
        if name == last_feature:
            rows.append(LayerCost("pool", "avgpool", pool_input, out_channels, None, 1, 0, 0, 0))
    return Profile(config.arch, config.width_mult, resolution, tuple(rows), tuple(row.n for row in stage_rows(config)))


@dataclass(frozen=True)
class TableRow:
    """A row in the shape of the V2 paper's Table 2: ``n`` repeated layers, first of stride ``s``."""

    input_shape: tuple[int, int, int]
    operator: str
    t: float | None
    c: int
    n: int
    s: int
    params: int
    madds: int


def paper_table(result: Profile) -> list[TableRow]:
    """Group a profile's layers by the rows of the architecture table they were built from."""
    arch = ARCHITECTURES[result.model]
    sizes = [1, *(result.stage_sizes or [row.n for row in arch.rows])]
    sizes += [1] * (len(result.layers) - sum(sizes))  # head conv, pool, classifier
    rows, start = [], 0
    for size in sizes:
        group = result.layers[start : start + size]
        first = group[0]
        rows.append(
            TableRow(
                first.input_shape,
                first.operator,
                first.expand_ratio,
                first.out_channels,
                size,
                first.stride,
                sum(layer.params for layer in group),
                sum(layer.madds for layer in group),
            )
        )
        start += size
    return rows


def _record_shape(shapes: dict, name: str, _module: nn.Module, args: tuple) -> None:
    shapes[name] = _hwc(args[0])


def _record_madds(madds: dict, name: str, module: nn.Module, _args: tuple, output: torch.Tensor) -> None:
    madds[name] += _weight_madds(module, output)


def _hwc(x: torch.Tensor) -> tuple[int, int, int]:
    if x.dim() == 2:  # the flattened input of a linear classifier is a 1x1 map
        return 1, 1, int(x.shape[1])
    return int(x.shape[2]), int(x.shape[3]), int(x.shape[1])


def profile(arch: str = "mobilenet_v2", width_mult: float = 1.0, resolution: int = 224, **overrides: Any) -> Profile:
    """Parameters and multiply-adds, layer by layer, of a MobileNet as the papers count them.

    Args:
        arch: "mobilenet_v2" or "mobilenet_v1".
        width_mult: the width multiplier alpha.
        resolution: the square input's side.
        **overrides: other fields of :class:`ModelConfig` (timm's ``depth_mult``, ``fixed_stem_head``, ...).

    Returns:
        The :class:`Profile` of a freshly built model of 1000 classes.
    """
    config = ModelConfig(arch=arch, width_mult=width_mult, input_size=resolution, **overrides)
    check_batch_fits(config, 1, resolution)
    return profile_model(MobileNet(config), resolution)


# Where a paper prints a figure for a cell that its TF-slim table prints differently, the paper wins:
# MobileNetV1 paper (arXiv 1704.04861) Table 6 gives 325M MAdds for 0.75 MobileNet-224; TF-slim says 317M.
PAPER_MADDS_M = {("mobilenet_v1", 0.75, 224): 325.0}
MATCH_TOLERANCE = 0.01


@dataclass(frozen=True)
class GridCell:
    """Our count for one published cell, and why it agrees with the figure (or why it cannot)."""

    published: PublishedCell
    madds: int
    params_without_norm: int
    verdict: str
    ok: bool

    @property
    def madds_error(self) -> float:
        """Relative difference of our MAdds from the published figure."""
        return self.madds / (self.published.macs_m * 1e6) - 1


def _verdict(cell: PublishedCell, madds_m: float, row_224: PublishedCell, classifier_m: float) -> tuple[str, bool]:
    """Whether ``madds_m`` reproduces a published cell, and in words why (or why it cannot)."""
    # The tables print whole millions, so a figure p stands for anything in [p - 0.5, p + 0.5].
    if (cell.macs_m - 0.5) * (1 - MATCH_TOLERANCE) <= madds_m <= (cell.macs_m + 0.5) * (1 + MATCH_TOLERANCE):
        exact = abs(madds_m / cell.macs_m - 1) <= MATCH_TOLERANCE
        return ("within 1%" if exact else "within 1% of the table's rounding to whole millions"), True
    paper = PAPER_MADDS_M.get((cell.arch, cell.width_mult, 224))
    reference_224 = row_224.macs_m if paper is None else paper
    # Every grid resolution is a multiple of 32, so each conv's output area, and with it every MAdd
    # but the classifier's, scales exactly with resolution^2: the 224 figure (+-0.5M) fixes the rest.
    scale = (cell.resolution / 224) ** 2
    low = classifier_m + (reference_224 - 0.5 - classifier_m) * scale
    high = classifier_m + (reference_224 + 0.5 - classifier_m) * scale
    fits = low * (1 - MATCH_TOLERANCE) <= madds_m <= high * (1 + MATCH_TOLERANCE)
    if paper is not None:
        return (
            f"not reproduced: TF-slim contradicts the paper ({paper:.0f}M at 224, so {low:.1f}-{high:.1f}M)",
            fits,
        )
    overlap = "does not overlap" if cell.macs_m + 0.5 < low or cell.macs_m - 0.5 > high else "only grazes"
    return (
        f"not reproduced: its 224 cell implies {low:.1f}-{high:.1f}M, which the published figure {overlap}",
        fits,
    )


def published_grid(arch: str = "mobilenet_v2") -> list[GridCell]:
    """Our counts for every cell of the TF-slim checkpoint table of ``arch``, each with a verdict."""
    cells = PUBLISHED_V2 if arch == "mobilenet_v2" else PUBLISHED_V1
    grid = []
    for cell in cells:
        result = profile(arch, cell.width_mult, cell.resolution)
        row_224 = next(c for c in cells if c.width_mult == cell.width_mult and c.resolution == 224)
        classifier_m = result.layers[-1].madds / 1e6
        verdict, ok = _verdict(cell, result.madds / 1e6, row_224, classifier_m)
        grid.append(GridCell(cell, result.madds, result.params_without_norm, verdict, ok))
    return grid
