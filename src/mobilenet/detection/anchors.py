"""SSD's anchors, as TensorFlow's ``ssd_anchor_generator`` lays them out (and Google's files store them).

Layer ``i`` of ``n`` has scale ``s_i = min + (max - min) * i / (n - 1)`` (and ``s_n = 1``). Each layer has one box
per aspect ratio at ``s_i``, then one at ``sqrt(s_i * s_i+1)``, 1:1, *last*: the order the prediction layers'
channels were trained in. TF's lowest layer (``reduce_boxes_in_lowest_layer``) has three: (0.1, 1:1), (s_0, 2:1),
(s_0, 1:2). A box of scale ``s`` and ratio ``r`` is ``s / sqrt(r)`` high and ``s * sqrt(r)`` wide (normalized); the
boxes of a cell are centred on it, cells in row-major order, layers shallowest first.
"""

from __future__ import annotations

import itertools
import math

import torch

from mobilenet.detection.config import SSDConfig

BoxSpec = tuple[float, float]  # (scale, aspect ratio)
LOWEST_LAYER_SMALL_SCALE = 0.1  # the lowest layer's 1:1 box, half its scale


def layer_scales(config: SSDConfig) -> list[float]:
    """The scale of every layer, then 1.0 (what the last layer's interpolated box reaches towards)."""
    n = config.num_layers
    return [config.min_scale + (config.max_scale - config.min_scale) * i / (n - 1) for i in range(n)] + [1.0]


def box_specs(config: SSDConfig) -> list[list[BoxSpec]]:
    """The (scale, aspect ratio) of each box of a cell, per layer, in the order the heads predict them."""
    specs = [
        [(scale, ratio) for ratio in config.aspect_ratios] + [(math.sqrt(scale * next_scale), 1.0)]
        for scale, next_scale in itertools.pairwise(layer_scales(config))
    ]
    if config.reduce_boxes_in_lowest_layer:
        specs[0] = [(LOWEST_LAYER_SMALL_SCALE, 1.0), (specs[0][0][0], 2.0), (specs[0][0][0], 0.5)]
    return specs


def anchors_per_cell(config: SSDConfig) -> list[int]:
    return [len(layer) for layer in box_specs(config)]


def grid_sizes(config: SSDConfig, height: int, width: int) -> list[tuple[int, int]]:
    """The feature maps' sizes for an input: the backbone's taps (strides 16 and 32 as TF reads them), then halved per
    extra layer ("SAME", rounding up)."""
    sizes = [(math.ceil(height / stride), math.ceil(width / stride)) for stride in config.tap_strides]
    while len(sizes) < config.num_layers:
        sizes.append((math.ceil(sizes[-1][0] / 2), math.ceil(sizes[-1][1] / 2)))
    return sizes


def ssd_anchors(config: SSDConfig, sizes: list[tuple[int, int]]) -> torch.Tensor:
    """Every anchor for feature maps of ``sizes``: [A, 4] as (cy, cx, h, w), normalized to the image."""
    layers = []
    for (rows, cols), specs in zip(sizes, box_specs(config), strict=True):
        scale, ratio = torch.tensor(specs, dtype=torch.float64).unbind(1)
        heights, widths = scale / ratio.sqrt(), scale * ratio.sqrt()
        # Cell centres at (i + 0.5) / rows: TF's default stride 1/rows and offset half a stride.
        cy = (torch.arange(rows, dtype=torch.float64) + 0.5) / rows
        cx = (torch.arange(cols, dtype=torch.float64) + 0.5) / cols
        grid_y, grid_x = torch.meshgrid(cy, cx, indexing="ij")
        count = len(specs)
        boxes = torch.stack(
            [
                grid_y[..., None].expand(rows, cols, count),
                grid_x[..., None].expand(rows, cols, count),
                heights.expand(rows, cols, count),
                widths.expand(rows, cols, count),
            ],
            dim=-1,
        )
        layers.append(boxes.reshape(-1, 4))
    return torch.cat(layers).float()
