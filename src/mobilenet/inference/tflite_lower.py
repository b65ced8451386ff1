"""A PyTorch model as a TFLite graph, written op by op from its exported ATen graph: float, or full-integer int8.

``torch.export`` gives the model (BatchNorm folded) as a flat graph of ATen ops at batch 1; each op maps to one
TFLite builtin (conv2d to CONV_2D or DEPTHWISE_CONV_2D with the ReLU6 after it fused, add to ADD, mean to MEAN,
linear to FULLY_CONNECTED, cat, upsample, view, sigmoid ...). TFLite is channels-last: every 4-D activation is
stored NHWC, so a head's ``permute(0, 2, 3, 1)`` costs nothing. In int8 (TFLite's quantization spec) weights are
symmetric per output channel, biases int32 at the input's scale times the weight's, activations asymmetric per
tensor with ranges observed on real images; the ops whose kernels need one grid for their input and output (pad,
resize, reshape, concatenation) share one, the union of their ranges. The input is uint8 pixels, as cameras,
Coral and MediaPipe give them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import fx

from mobilenet.inference.tflite_aten import (
    activation_name,
    attribute,
    calls,
    conv_arguments,
    graph_input,
    target,
    zero_pad,
)
from mobilenet.inference.tflite_calibrate import activation_grid, int8_weights
from mobilenet.inference.tflite_graph import Grid, TFLiteGraph
from mobilenet.nn.layers import tf_same_pad

ACTIVATIONS = {"relu": 1, "relu6": 3}  # TFLite's fused activation codes (NONE is 0)
PROBABILITY = Grid.per_tensor(1 / 256, -128)  # the int8 grid TFLite fixes for LOGISTIC and SOFTMAX outputs
# Ops that read one tensor and write another on the same grid (their int8 kernels require it).
SAME_GRID = {"aten.pad.default", "aten.constant_pad_nd.default", "aten.upsample_bilinear2d.vec", "aten.expand.default",
             "aten.view.default", "aten._unsafe_view.default", "aten.reshape.default", "aten.cat.default"}  # fmt: skip
# Ops that change nothing in TFLite's layout (dropout and copies; a move to channels-last is TFLite's own layout).
ALIASES = {"aten.clone.default", "aten.dropout.default", "aten.alias.default", "aten.contiguous.default",
           "aten.permute.default"}  # fmt: skip
FUSIBLE = {"aten.conv2d.default", "aten.linear.default", "aten.add.Tensor"}


@dataclass
class Value:
    """What a node of the ATen graph is in the file: a tensor, and whether it holds a 4-D activation as NHWC."""

    tensor: int
    channels_last: bool


PROBABILITIES = ("aten.sigmoid.default", "aten.softmax.int", "aten._softmax.default")


@dataclass(frozen=True)
class Lowered:
    """A lowered graph: the file being written, its input tensor, its output tensors and the layout of each:
    "nhwc" (a 4-D map channels-last: the model's NCHW output is its transpose), "plain" (as the model's), or
    "constant" (the same for every image: a detector's anchors)."""

    file: TFLiteGraph
    input: int
    outputs: list[int]
    layouts: list[str]


class Lowering:
    """Writes the nodes of an exported graph into a :class:`TFLiteGraph`: float when ``ranges`` is None, else int8
    with ``ranges`` (from :func:`observe_ranges`) and the uint8 input's ``pixels`` grid."""

    def __init__(self, graph: fx.GraphModule, ranges: dict[str, tuple[float, float]] | None, pixels: Grid | None):
        self.module, self.file, self.ranges, self.pixels = graph, TFLiteGraph(), ranges, pixels
        self.int8 = ranges is not None
        self.nodes = {node.name: node for node in graph.graph.nodes}
        self.values: dict[str, Value] = {}
        self.fused: dict[str, fx.Node] = {}  # a conv/linear/add -> the activation after it, written as one op
        self.group = {name: name for name in self.nodes}  # union-find over the nodes that share a grid
        self.skipped_pads: set[str] = set()
        for node in calls(graph):
            self.plan(node)
        self.written_with_others = self.skipped_pads | {node.name for node in self.fused.values()}
        self.grids = self.assign_grids() if self.int8 else {}

    def plan(self, node: fx.Node) -> None:
        """Fuse an activation into the op before it, share grids, fold a TF "SAME" pad into its convolution."""
        source = node.args[0] if node.args else None
        fusible = isinstance(source, fx.Node) and target(source) in FUSIBLE and len(source.users) == 1
        if activation_name(node) and fusible:
            self.fused[source.name] = node
            self.union(source.name, node.name)
        if target(node) in SAME_GRID | ALIASES:
            for parent in node.all_input_nodes:
                self.union(parent.name, node.name)
        if target(node) == "aten.conv2d.default" and self.pad_before(node):
            self.skipped_pads.add(source.name)

    def find(self, name: str) -> str:
        while self.group[name] != name:
            self.group[name] = self.group[self.group[name]]
            name = self.group[name]
        return name

    def union(self, a: str, b: str) -> None:
        self.group[self.find(a)] = self.find(b)

    def assign_grids(self) -> dict[str, Grid]:
        """The int8 grid of each group of nodes that share one: the input's is the pixels' (less 128, as int8), a
        sigmoid's or softmax's TFLite's fixed one, any other the union of its members' observed ranges."""
        members: dict[str, list[fx.Node]] = {}
        for name, node in self.nodes.items():
            members.setdefault(self.find(name), []).append(node)
        grids = {}
        for root, nodes in members.items():
            # An op's values before the activation fused into it are never stored: their range is not the grid's.
            observed = [self.ranges[n.name] for n in nodes if n.name in self.ranges and n.name not in self.fused]
            if any(node.op == "placeholder" for node in nodes):
                grids[root] = Grid.per_tensor(self.pixels.scale[0], self.pixels.zero_point[0] - 128)
            elif any(target(node) in PROBABILITIES for node in nodes):
                grids[root] = PROBABILITY
            elif observed:
                grids[root] = activation_grid(min(low for low, _ in observed), max(high for _, high in observed))
        return grids

    def grid(self, name: str) -> Grid | None:
        """The int8 grid of node ``name``'s tensor (None in float)."""
        return self.grids[self.find(name)] if self.int8 else None

    # -- writing -----------------------------------------------------------------------------------------------
    def lower(self, dequantize: bool = True) -> Lowered:
        """The file's graph with its input and outputs (float32: int8 outputs are dequantized, unless not
        ``dequantize``: then they are the int8 tensors, for more ops to follow)."""
        source = graph_input(self.module)
        _, channels, height, width = source.meta["val"].shape
        shape = (1, height, width, channels)
        if self.int8:
            pixels = self.file.tensor("pixels", shape, np.uint8, self.pixels)
            image = self.file.tensor("image", shape, np.int8, self.grid(source.name))
            self.file.operator("QUANTIZE", [pixels], [image], version=2)
        else:
            pixels = image = self.file.tensor("image", shape, np.float32)
        self.values[source.name] = Value(image, True)
        for node in calls(self.module):
            self.write(node)
        (results,) = [node.args[0] for node in self.module.graph.nodes if node.op == "output"]
        outputs, layouts = [], []
        for index, result in enumerate(results if isinstance(results, tuple | list) else (results,)):
            if result.op == "get_attr":  # a constant output (a detector's anchors)
                constant = attribute(self.module, result).numpy().astype(np.float32)
                outputs.append(self.file.constant(result.name, constant))
                layouts.append("constant")
                continue
            value = self.values[result.name]
            layouts.append("nhwc" if value.channels_last else "plain")
            outputs.append(self.file.dequantized(value.tensor, f"output_{index}") if dequantize else value.tensor)
        return Lowered(self.file, pixels, outputs, layouts)

    def write(self, node: fx.Node) -> None:
        op = target(node)
        source = node.args[0] if node.args else None
        if node.name in self.written_with_others:
            return  # written with the convolution after it / the op before it
        if op in ALIASES:
            value = self.values[source.name]
            if op == "aten.permute.default":
                if not (value.channels_last and list(node.args[1]) == [0, 2, 3, 1]):
                    raise ValueError(f"TFLite export moves channels last only; {node.name} permutes {node.args[1]}")
                value = Value(value.tensor, False)
            self.values[node.name] = value
            return
        write = WRITERS.get(op)
        if write is None:
            activation = activation_name(node)
            if activation is None:
                raise ValueError(f"TFLite export has no rule for {op} ({node.name}): the model uses an op it cannot "
                                 "write")  # fmt: skip
            self.unary(node, activation.upper(), 2)
            return
        write(self, node)

    def tensor(self, node: fx.Node, channels_last: bool) -> int:
        """A new tensor for ``node``'s output (for the activation fused after it, when there is one)."""
        last = self.fused.get(node.name, node)
        shape = tuple(last.meta["val"].shape)
        if channels_last:
            shape = (shape[0], *shape[2:], shape[1])
        dtype = np.int8 if self.int8 else np.float32
        index = self.file.tensor(last.name, shape, dtype, self.grid(last.name))
        self.values[node.name] = self.values[last.name] = Value(index, channels_last)
        return index

    def fused_activation(self, node: fx.Node) -> int:
        return ACTIVATIONS[activation_name(self.fused[node.name])] if node.name in self.fused else 0

    def attribute(self, node: fx.Node | None) -> torch.Tensor | None:
        return None if node is None else attribute(self.module, node).detach()

    def weights(self, name: str, weight: np.ndarray, axis: int, bias: np.ndarray, source: int) -> list[int]:
        """A weight and bias tensor: float, or int8 per channel along ``axis`` with an int32 bias at the input's
        scale times the channel's."""
        if not self.int8:
            return [self.file.constant(f"{name}/weights", weight.astype(np.float32)),
                    self.file.constant(f"{name}/bias", bias.astype(np.float32))]  # fmt: skip
        source_scale = self.file.tensors[source].quantization.scale[0]
        quantized, scale = int8_weights(weight, axis, bias, source_scale)
        zeros = (0,) * len(scale)
        bias_scale = scale * source_scale
        return [
            self.file.constant(f"{name}/weights", quantized, Grid(tuple(scale), zeros, axis)),
            self.file.constant(f"{name}/bias", np.round(bias / bias_scale).astype(np.int32),
                               Grid(tuple(bias_scale), zeros, 0)),
        ]  # fmt: skip

    def conv2d(self, node: fx.Node) -> None:
        x, weight, bias, stride, padding, dilation, groups = conv_arguments(node)
        w = self.attribute(weight).double().numpy()
        out_channels, per_group = w.shape[:2]
        b = np.zeros(out_channels) if bias is None else self.attribute(bias).double().numpy()
        depthwise = groups > 1
        if depthwise and (per_group != 1 or groups != out_channels):
            raise ValueError(f"TFLite export writes depthwise or dense convolutions; {node.name} has {groups} groups")
        if x.name in self.skipped_pads:
            x, mode = x.args[0], 0  # SAME
        elif self.same_padding(node):
            mode = 0
        else:
            mode = 1  # VALID, after an explicit pad where the conv pads (PyTorch pads both sides at any stride)
        source = self.values[x.name].tensor
        if mode == 1 and any(padding):
            source = self.pad(x, (padding[0], padding[0], padding[1], padding[1])).tensor
        if depthwise:
            tensors = self.weights(node.name, w.transpose(1, 2, 3, 0), 3, b, source)  # 1HWO
        else:
            tensors = self.weights(node.name, w.transpose(0, 2, 3, 1), 0, b, source)  # OHWI
        output = self.tensor(node, True)
        fields = dict(padding=mode, strideH=stride[0], strideW=stride[1], dilationHFactor=dilation[0],
                      dilationWFactor=dilation[1], fusedActivationFunction=self.fused_activation(node))  # fmt: skip
        if depthwise:
            options = self.file.options("DepthwiseConv2DOptions", depthMultiplier=1, **fields)
            self.file.operator("DEPTHWISE_CONV_2D", [source, *tensors], [output], options, 3 if self.int8 else 2)
        else:
            options = self.file.options("Conv2DOptions", **fields)
            self.file.operator("CONV_2D", [source, *tensors], [output], options, 3 if self.int8 else 1)

    def pad(self, x: fx.Node, pads: tuple[int, int, int, int]) -> Value:
        """``x`` padded with (top, bottom, left, right) zeros, on its own grid (an int8 PAD pads its zero point)."""
        value = self.values[x.name]
        n, h, w, c = self.file.tensors[value.tensor].shape
        shape = (n, h + pads[0] + pads[1], w + pads[2] + pads[3], c)
        grid = self.grid(x.name)
        output = self.file.tensor(f"{x.name}/padded", shape, np.int8 if self.int8 else np.float32, grid)
        paddings = self.file.constant(f"{x.name}/paddings", np.array([[0, 0], pads[:2], pads[2:], [0, 0]], np.int32))
        self.file.operator("PAD", [value.tensor, paddings], [output], self.file.options("PadOptions"), 2)
        return Value(output, True)

    def explicit_pad(self, node: fx.Node) -> None:
        left, right, top, bottom = node.args[1]
        self.values[node.name] = self.pad(node.args[0], (top, bottom, left, right))

    def same_padding(self, conv: fx.Node) -> bool:
        """Whether ``conv``'s own padding is TF's "SAME" for its input (always at stride 1 with an odd kernel)."""
        x, weight, _, stride, padding, dilation, _ = conv_arguments(conv)
        sizes, kernels = x.meta["val"].shape[2:], weight.meta["val"].shape[2:]
        return all(
            tf_same_pad(sizes[i], kernels[i], stride[i], dilation[i]) == (padding[i], padding[i]) for i in range(2)
        )

    def pad_before(self, conv: fx.Node) -> bool:
        """Whether ``conv`` (unpadded) reads a zero pad of exactly TF's "SAME" padding, and is its only reader."""
        x, weight, _, stride, padding, dilation, _ = conv_arguments(conv)
        if not zero_pad(x) or len(x.users) != 1 or any(padding):
            return False
        sizes, kernels = x.args[0].meta["val"].shape[2:], weight.meta["val"].shape[2:]
        same = [tf_same_pad(sizes[i], kernels[i], stride[i], dilation[i]) for i in range(2)]
        return tuple(x.args[1]) == (*same[1], *same[0])

    def linear(self, node: fx.Node) -> None:
        x, weight, bias = (*node.args, None)[:3]
        w = self.attribute(weight).double().numpy()
        b = np.zeros(len(w)) if bias is None else self.attribute(bias).double().numpy()
        source = self.values[x.name].tensor
        tensors = self.weights(node.name, w, 0, b, source)
        output = self.tensor(node, False)
        options = self.file.options("FullyConnectedOptions", fusedActivationFunction=self.fused_activation(node))
        self.file.operator("FULLY_CONNECTED", [source, *tensors], [output], options, 5 if self.int8 else 1)

    def add(self, node: fx.Node) -> None:
        a, b = node.args[:2]
        if not isinstance(b, fx.Node) or node.kwargs.get("alpha", 1) != 1:
            raise ValueError(f"TFLite export adds two tensors; {node.name} adds {b!r}")
        value = self.values[a.name]
        inputs = [value.tensor, self.values[b.name].tensor]
        options = self.file.options("AddOptions", fusedActivationFunction=self.fused_activation(node))
        self.file.operator("ADD", inputs, [self.tensor(node, value.channels_last)], options, 2 if self.int8 else 1)

    def mean(self, node: fx.Node) -> None:
        x, dims = node.args[:2]
        keep = bool(node.args[2]) if len(node.args) > 2 else False
        value = self.values[x.name]
        axes = sorted({2: 1, 3: 2}.get(dim % 4, -1) for dim in dims)
        if not value.channels_last or -1 in axes:
            raise ValueError(f"TFLite export averages over height and width only; {node.name} averages over {dims}")
        constant = self.file.constant(f"{node.name}/axes", np.array(axes, np.int32))
        options = self.file.options("ReducerOptions", keepDims=keep)
        output = self.tensor(node, keep)
        self.file.operator("MEAN", [value.tensor, constant], [output], options, 2 if self.int8 else 1)

    def reshape(self, node: fx.Node) -> None:
        value = self.values[node.args[0].name]
        before = tuple(node.args[0].meta["val"].shape)
        if value.channels_last and len(before) == 4 and before[2] * before[3] > 1:
            raise ValueError(f"TFLite export reshapes channels-last maps after a permute only ({node.name})")
        shape = [int(n) for n in node.meta["val"].shape]
        constant = self.file.constant(f"{node.name}/shape", np.array(shape, np.int32))
        output = self.tensor(node, False)
        options = self.file.options("ReshapeOptions", newShape=shape)
        self.file.operator("RESHAPE", [value.tensor, constant], [output], options)

    def cat(self, node: fx.Node) -> None:
        parts, dim = node.args[0], node.args[1] if len(node.args) > 1 else 0
        values = [self.values[part.name] for part in parts]
        rank = len(node.meta["val"].shape)
        channels_last = values[0].channels_last
        if any(value.channels_last != channels_last for value in values):
            raise ValueError(f"TFLite export concatenates tensors of one layout; {node.name} mixes them")
        axis = {1: 3, 2: 1, 3: 2}[dim % 4] if channels_last else dim % rank
        options = self.file.options("ConcatenationOptions", axis=axis)
        output = self.tensor(node, channels_last)
        self.file.operator("CONCATENATION", [v.tensor for v in values], [output], options, 2 if self.int8 else 1)

    def expand(self, node: fx.Node) -> None:
        """A 1x1 map (DeepLab's image pooling) repeated over a height and width: BROADCAST_TO."""
        value = self.values[node.args[0].name]
        shape = tuple(node.meta["val"].shape)
        if not value.channels_last or len(shape) != 4:
            raise ValueError(f"TFLite export broadcasts channels-last maps only ({node.name})")
        constant = self.file.constant(f"{node.name}/shape", np.array([shape[0], *shape[2:], shape[1]], np.int32))
        output = self.tensor(node, True)
        self.file.operator("BROADCAST_TO", [value.tensor, constant], [output], version=3 if self.int8 else 2)

    def upsample(self, node: fx.Node) -> None:
        x, size, align_corners = node.args[:3]
        constant = self.file.constant(f"{node.name}/size", np.array(size, np.int32))
        options = self.file.options("ResizeBilinearOptions", alignCorners=bool(align_corners),
                                    halfPixelCenters=not align_corners)  # fmt: skip
        output = self.tensor(node, True)
        self.file.operator("RESIZE_BILINEAR", [self.values[x.name].tensor, constant], [output], options, 3)

    def unary(self, node: fx.Node, op: str, version: int, options: object = None) -> None:
        value = self.values[node.args[0].name]
        output = self.tensor(node, value.channels_last)
        self.file.operator(op, [value.tensor], [output], options, version if self.int8 else 1)

    def sigmoid(self, node: fx.Node) -> None:
        self.unary(node, "LOGISTIC", 2)

    def softmax(self, node: fx.Node) -> None:
        if node.args[1] % len(node.meta["val"].shape) != len(node.meta["val"].shape) - 1:
            raise ValueError(f"TFLite's SOFTMAX is over the last axis; {node.name} is over axis {node.args[1]}")
        self.unary(node, "SOFTMAX", 2, self.file.options("SoftmaxOptions", beta=1.0))


WRITERS = {
    "aten.conv2d.default": Lowering.conv2d,
    "aten.linear.default": Lowering.linear,
    "aten.add.Tensor": Lowering.add,
    "aten.mean.dim": Lowering.mean,
    "aten.view.default": Lowering.reshape,
    "aten._unsafe_view.default": Lowering.reshape,
    "aten.reshape.default": Lowering.reshape,
    "aten.cat.default": Lowering.cat,
    "aten.upsample_bilinear2d.vec": Lowering.upsample,
    "aten.expand.default": Lowering.expand,
    "aten.pad.default": Lowering.explicit_pad,
    "aten.constant_pad_nd.default": Lowering.explicit_pad,
    "aten.sigmoid.default": Lowering.sigmoid,
    "aten.softmax.int": Lowering.softmax,
    "aten._softmax.default": Lowering.softmax,
}
