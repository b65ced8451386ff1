"""int8 grids for a TFLite file: each activation's range from real images, the input's uint8 pixels, and the
per-channel normalization folded into the first convolution."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from torch import fx

from mobilenet.inference.tflite_aten import PADS, attribute, graph_input, readers, target
from mobilenet.inference.tflite_graph import Grid
from mobilenet.nn.preprocessing import Preprocessing


def observe_ranges(
    graph: fx.GraphModule, images: Iterable[torch.Tensor], samples: int = 1024
) -> dict[str, tuple[float, float]]:
    """The range each node's int8 grid covers, from ``images`` (one (C, H, W) image at a time): the clipping of the
    observed range that quantizes a sample of its values (``samples`` per image) with the least squared error, as
    PyTorch's histogram observer chooses; the graph's outputs keep their whole range (a clipped top logit ties).

    Measured on Coral's MobileNetV2 (200 Imagenette calibration images, no bias correction; top-1 against float on
    the 500 ImageNet sample images, ties that include float's class counted): 97.4%, against 96.6% for the extremes.
    """
    extremes: dict[str, tuple[float, float]] = {}
    seen: dict[str, list[torch.Tensor]] = {}
    generator = torch.Generator().manual_seed(0)

    class Observer(fx.Interpreter):
        def run_node(self, node: fx.Node):
            result = super().run_node(node)
            if isinstance(result, torch.Tensor) and result.is_floating_point() and node.op != "get_attr":
                low, high = result.min().item(), result.max().item()
                old = extremes.get(node.name, (low, high))
                extremes[node.name] = (min(old[0], low), max(old[1], high))
                flat = result.flatten()
                seen.setdefault(node.name, []).append(flat[torch.randint(len(flat), (samples,), generator=generator)])
            return result

    observer = Observer(graph)
    with torch.inference_mode():
        for image in images:
            observer.run(image[None])
    (results,) = [node.args[0] for node in graph.graph.nodes if node.op == "output"]
    outputs = {node.name for node in (results if isinstance(results, tuple | list) else (results,))}
    return {
        name: extremes[name] if name in outputs else least_error_range(torch.cat(seen[name]), *extremes[name])
        for name in extremes
    }


def least_error_range(values: torch.Tensor, low: float, high: float, steps: int = 33) -> tuple[float, float]:
    """The range ``(low, high) * f`` (``f`` from 0.2 to 1) whose int8 grid rounds ``values`` with the least error."""

    def error(factor: float) -> float:
        return float((rounded(values, activation_grid(low * factor, high * factor)) - values).square().mean())

    best = min(np.linspace(0.2, 1.0, steps), key=error)
    return low * float(best), high * float(best)


def activation_grid(low: float, high: float) -> Grid:
    """TFLite's int8 grid for values in [low, high], widened to hold 0 exactly (padding and ReLU need it)."""
    low, high = min(low, 0.0), max(high, 0.0)
    scale = max(high - low, 1e-8) / 255
    return Grid.per_tensor(scale, int(np.clip(round(-128 - low / scale), -128, 127)))


def rounded(values: torch.Tensor, grid: Grid) -> torch.Tensor:
    """``values`` rounded to an int8 per-tensor ``grid``, clipped to its range, as real numbers again."""
    scale, zero = grid.scale[0], grid.zero_point[0]
    return ((torch.round(values / scale) + zero).clamp(-128, 127) - zero) * scale


def int8_weights(weight: np.ndarray, axis: int, bias: np.ndarray, source_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """``weight`` on its int8 grid, one scale per output channel along ``axis``: the int8 values and the scales.
    Each scale is symmetric over its channel's extremes, as TFLite's spec requires, and wide enough for the channel's
    bias to fit the int32 grid at ``source_scale`` (the input's) times its own (a channel of zero, or nearly zero,
    weights)."""
    channels = np.abs(np.moveaxis(weight, axis, 0).reshape(weight.shape[axis], -1)).max(1)
    scale = np.maximum(np.maximum(channels / 127, np.abs(bias) / (source_scale * 2**30)), 1e-12)
    shape = [1] * weight.ndim
    shape[axis] = -1
    return np.clip(np.round(weight / scale.reshape(shape)), -127, 127).astype(np.int8), scale


def input_grid(pre: Preprocessing) -> Grid:
    """The uint8 pixels' grid: ``(pixel - zero_point) * scale`` is the image normalized with the channels' mean
    mean and std (exactly the model's input when the channels share them, as TF's (x - 128) / 128 does)."""
    return Grid.per_tensor(1 / (255 * float(np.mean(pre.std))), round(255 * float(np.mean(pre.mean))))


def fold_input_normalization(graph: fx.GraphModule, pre: Preprocessing, grid: Grid) -> None:
    """Fold what the input grid's shared mean and std leave of ``pre``'s per-channel ones into the first conv.

    The model sees ``(pixel / 255 - mean_c) / std_c = real * scale_c + shift_c`` for the file's real input: its
    weights are scaled per input channel and ``shift_c`` joins the bias. Only the padded border differs (the file
    pads the real input's 0, the model the normalized image's), by ``shift_c`` there: nothing for TF's images.
    """
    (conv,) = readers(graph_input(graph))
    while target(conv) in PADS:
        (conv,) = readers(conv)
    if target(conv) != "aten.conv2d.default":
        raise ValueError(f"the model's input goes to {target(conv)}, not a convolution: cannot fold its normalization")
    mean, std = torch.tensor(pre.mean, dtype=torch.float64), torch.tensor(pre.std, dtype=torch.float64)
    real_zero, real_scale = grid.zero_point[0] / 255, 1 / (255 * grid.scale[0])  # as mean/std of [0, 1] pixels
    scale, shift = real_scale / std, (real_zero - mean) / std
    weight, bias = (attribute(graph, conv.args[index]) for index in (1, 2))
    with torch.no_grad():
        bias.add_((weight.double() * shift[None, :, None, None]).sum((1, 2, 3)).to(bias.dtype))
        weight.mul_(scale[None, :, None, None].to(weight.dtype))
