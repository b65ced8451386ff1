"""TensorFlow 1 frozen graphs (a ``.pb`` GraphDef) read without TensorFlow: nodes, attributes and constants.

A frozen graph (TF-slim's ``mobilenet_v2_1.0_224_frozen.pb``, the Object Detection API's and DeepLab's
``frozen_inference_graph.pb``) keeps each variable as a Const node that the graph reads through an Identity named
``<variable>/read``, so the weights keep their checkpoint names. The protobuf classes and the TensorProto decoder
are TensorBoard's copies of TensorFlow's (``tensorboard.compat.proto``, ``tensorboard.util.tensor_util``): they need
protobuf, not TensorFlow.
"""

from __future__ import annotations

import mmap
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mobilenet.utils.optional import require


@dataclass(frozen=True)
class GraphNode:
    """One node: its op, the tensors it reads, and its attributes decoded to Python values.

    ``inputs`` are tensor names as TF writes them: ``node`` (output 0), ``node:k``, or ``^node`` for a control
    dependency. ``attrs`` values are str, int, float, bool, a dtype name (``"float32"``), a shape (a tuple, -1
    for an unknown size; None for an unknown rank), a numpy array (a tensor), or a list of those.
    """

    name: str
    op: str
    inputs: tuple[str, ...]
    attrs: dict[str, Any]


@dataclass(frozen=True)
class FrozenGraph:
    """A frozen graph's nodes (in file order) and every Const node's value, by node name."""

    nodes: dict[str, GraphNode]
    constants: dict[str, np.ndarray]

    def op_counts(self) -> Counter[str]:
        """How many nodes of each op type the graph has."""
        return Counter(node.op for node in self.nodes.values())

    def nodes_of(self, op: str) -> list[GraphNode]:
        """The nodes of one op type (``"FusedBatchNorm"``, say), in file order."""
        return [node for node in self.nodes.values() if node.op == op]

    def producer(self, tensor: str) -> GraphNode:
        """The node that computes a tensor named as in ``inputs`` (``name``, ``name:k`` or ``^name``)."""
        name = tensor.lstrip("^").split(":")[0]
        if name not in self.nodes:
            raise ValueError(f"the graph has no node {name!r}: pick one of graph.nodes")
        return self.nodes[name]

    def consumers(self, name: str) -> list[GraphNode]:
        """The nodes that read node ``name``'s outputs (control dependencies left out)."""
        return [node for node in self.nodes.values() if any(t.split(":")[0] == name for t in node.inputs)]

    def constant_input(self, node: GraphNode, index: int) -> np.ndarray | None:
        """The value of a node's ``index``-th input when a Const gives it (through Identities), else None."""
        source = self.producer(node.inputs[index])
        while source.op == "Identity":
            source = self.producer(source.inputs[0])
        return self.constants.get(source.name)

    def bn_epsilons(self, scope: str | tuple[str, ...] = "") -> set[float]:
        """The epsilons of the BatchNorm ops whose names start with ``scope`` (one or several; "": all), as the
        decimals written (0.001, not float32's 0.0010000000475)."""
        norms = (node for op in ("FusedBatchNorm", "FusedBatchNormV3") for node in self.nodes_of(op))
        return {float(f"{node.attrs['epsilon']:.6g}") for node in norms if node.name.startswith(scope)}

    def input_size(self) -> int | None:
        """The side of the graph's square image input (a 4-D Placeholder of fixed height and width), None if none."""
        shapes = [node.attrs.get("shape") for node in self.nodes_of("Placeholder")]
        return next((shape[1] for shape in shapes if shape and len(shape) == 4 and shape[1] == shape[2] > 0), None)

    def variables(self) -> dict[str, np.ndarray]:
        """The frozen variables: constants read through ``<name>/read``, under their checkpoint names."""
        return {
            name: self.constants[name]
            for name in self.constants
            if (read := self.nodes.get(f"{name}/read")) is not None and read.op == "Identity" and read.inputs == (name,)
        }


def mentions(path: str | Path, name: str) -> bool:
    """Whether a graph file holds ``name`` (a node's name or a part of one) anywhere, without parsing it."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return False
    with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return data.find(name.encode()) >= 0


def load_frozen_graph(path: str | Path) -> FrozenGraph:
    """Parse a frozen GraphDef file: every node with its attributes, and every constant as a numpy array."""
    graph_pb2 = require("tensorboard.compat.proto.graph_pb2", "tensorboard")
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder: pass the frozen graph inside it (frozen_inference_graph.pb, say)")
    if not path.is_file():
        raise FileNotFoundError(f"frozen graph not found: {path}")
    decode_error = require("google.protobuf.message", "tensorboard").DecodeError
    graph_def = graph_pb2.GraphDef()
    try:
        graph_def.ParseFromString(path.read_bytes())
    except decode_error as error:
        raise ValueError(f"{path} is not a TensorFlow GraphDef ({error}): pass a frozen graph .pb") from None
    # Other bytes can parse as a GraphDef too (protobuf skips unknown fields): a graph has named nodes with ops.
    if not graph_def.node or not all(node.name and node.op for node in graph_def.node):
        raise ValueError(f"{path} holds no TensorFlow graph nodes: pass a frozen graph .pb (not a SavedModel)")
    nodes = {node.name: _graph_node(node) for node in graph_def.node}
    constants = {name: node.attrs["value"] for name, node in nodes.items() if node.op == "Const"}
    return FrozenGraph(nodes, constants)


def _graph_node(node: Any) -> GraphNode:
    attrs = {key: _attr_value(value) for key, value in node.attr.items()}
    return GraphNode(node.name, node.op, tuple(node.input), attrs)


def _attr_value(value: Any) -> Any:
    """An AttrValue proto as a Python value (see GraphNode); a function reference as its name."""
    kind = value.WhichOneof("value")
    if kind == "list":
        listed = value.list
        for field in ("s", "i", "f", "b", "type", "shape", "tensor", "func"):
            items = getattr(listed, field)
            if items:
                return [_scalar(field, item) for item in items]
        return []
    return None if kind is None else _scalar(kind, getattr(value, kind))


def _scalar(kind: str, item: Any) -> Any:
    if kind == "s":
        return item.decode("utf-8", errors="replace")
    if kind == "type":
        return require("tensorboard.compat.tensorflow_stub.dtypes", "tensorboard").as_dtype(item).name
    if kind == "shape":
        return None if item.unknown_rank else tuple(int(dim.size) for dim in item.dim)
    if kind == "tensor":
        return require("tensorboard.util.tensor_util", "tensorboard").make_ndarray(item)
    if kind == "func":
        return item.name
    if kind == "placeholder":
        return f"${item}"
    return item  # i, f, b: already int, float, bool
