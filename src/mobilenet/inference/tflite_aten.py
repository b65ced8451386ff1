"""The ATen graph a model exports to, as the TFLite writer reads it: ops by name, weights, the input, conv arguments."""

from __future__ import annotations

import functools

import torch
from torch import fx, nn

PADS = ("aten.pad.default", "aten.constant_pad_nd.default")


def export_graph(model: nn.Module, input_size: int) -> fx.GraphModule:
    """``model`` (BatchNorm folded, eval) as a flat graph of ATen ops at batch 1, weights as attributes."""
    example = torch.zeros(1, 3, input_size, input_size)
    return torch.export.export(model, (example,)).run_decompositions({}).module()


def calls(graph: fx.GraphModule) -> list[fx.Node]:
    return [node for node in graph.graph.nodes if node.op == "call_function"]


def target(node: fx.Node) -> str:
    return str(node.target)


def activation_name(node: fx.Node) -> str | None:
    """``relu`` or ``relu6`` for a node that is one (hardtanh between 0 and 6), else None."""
    if target(node) in ("aten.relu.default", "aten.relu_.default"):
        return "relu"
    if target(node) in ("aten.hardtanh.default", "aten.hardtanh_.default") and tuple(node.args[1:3]) == (0.0, 6.0):
        return "relu6"
    return None


def attribute(graph: fx.GraphModule, node: fx.Node) -> torch.Tensor:
    """The weight a ``get_attr`` node reads (its target is a dotted path into the module)."""
    return functools.reduce(getattr, str(node.target).split("."), graph)


def readers(node: fx.Node) -> list[fx.Node]:
    """The ops that read ``node`` (not the export's own input checks)."""
    return [user for user in node.users if user.op == "call_function"]


def graph_input(graph: fx.GraphModule) -> fx.Node:
    (first,) = [node for node in graph.graph.nodes if node.op == "placeholder"]
    return first


def zero_pad(node: fx.Node) -> bool:
    """Whether ``node`` pads with zeros (F.pad's constant mode, or constant_pad_nd, at value 0)."""
    if target(node) == "aten.pad.default":
        return node.args[2:3] in ((), ("constant",)) and node.args[3:4] in ((), (0,), (0.0,), (None,))
    return target(node) == "aten.constant_pad_nd.default" and node.args[2:3] in ((), (0,), (0.0,))


def conv_arguments(conv: fx.Node) -> tuple:
    """conv2d's (input, weight, bias, stride, padding, dilation, groups), with the defaults the export left out."""
    defaults = (None, None, None, [1, 1], [0, 0], [1, 1], 1)
    return (*conv.args, *defaults[len(conv.args) :])
