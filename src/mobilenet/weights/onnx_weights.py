"""The weights of a MobileNet classifier recovered from an ONNX graph: the ONNX model zoo's, ``torch.onnx`` exports of
torchvision's model or ours, anyone's.

An exporter may keep each BatchNorm (``BatchNormalization`` nodes) or fold it into its convolution's bias, name its
tensors or not, hand them over through ``Identity`` and ``Constant`` nodes: what stays is the chain of ``Conv``
nodes in execution order, and a classifier (``Gemm``, ``MatMul`` + ``Add``, or a 1x1 ``Conv``) after the global
pooling. The chain is matched with our widths; a convolution padded more after than before is TensorFlow's "SAME".
Read with the ``onnx`` package, nothing in the graph run; ONNX Runtime is what the result is checked against.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from mobilenet.nn.config import MOBILENET
from mobilenet.nn.model import MobileNet
from mobilenet.nn.preprocessing import TF_MEAN, TF_STD, Preprocessing
from mobilenet.utils.optional import require
from mobilenet.weights.chain import ConvNorm, load_chain, load_classifier, match_config, without_background
from mobilenet.weights.format import Checkpoint, ModelInfo, parse_metadata

# Ops that hand the pooled features on unchanged in value: the classifier reads what comes out of them.
PASS_THROUGH = ("Reshape", "Flatten", "Squeeze", "Identity", "Dropout")


@dataclass
class Graph:
    """What a walk through the graph found: the convolutions, the classifier and the conventions they show."""

    convs: list[ConvNorm] = field(default_factory=list)
    classifier: tuple[np.ndarray, np.ndarray] | None = None  # (classes, features), (classes,)
    tf_same: bool = False
    bn_eps: float | None = None


def read_onnx(path: str | Path) -> Checkpoint:
    """A MobileNet classifier's ONNX file as our tensors and settings (its own metadata where we exported it)."""
    path = Path(path)
    model = load_proto(path)
    info = parse_metadata({prop.key: prop.value for prop in model.metadata_props}, str(path))
    if info.kind not in (None, MOBILENET):
        raise ValueError(f"{path} is an exported {info.kind!r} graph: run it with its task's command, or pass the "
                         ".safetensors it was exported from")  # fmt: skip
    found = walk(model.graph, str(path))
    shapes = [tuple(conv.weight.shape) for conv in found.convs]
    size, channels = input_shape(model.graph)
    padding = "tf_same" if found.tf_same else "symmetric"
    eps = found.bn_eps or (1e-3 if found.tf_same else 1e-5)
    config = match_config(shapes, padding=padding, bn_eps=eps, input_size=size, in_chans=channels)
    if config is None:
        first = f" (first {shapes[0]}, last {shapes[-1]})" if shapes else ""
        raise ValueError(f"{path}: its {len(shapes)} convolutions{first} match no MobileNetV1/V2 of ours")
    classifier = None if found.classifier is None else without_background(found.classifier)
    config = replace(config, num_classes=0 if classifier is None else len(classifier[0]))
    if info.config is not None:  # ours: the settings it was exported with (dropout, activation, ...)
        config = replace(info.config, num_classes=config.num_classes)
    net = MobileNet(config)
    load_chain(net.features, found.convs)
    if classifier is not None:
        load_classifier(net, *classifier)
    mean, std = (TF_MEAN, TF_STD) if found.tf_same else (Preprocessing().mean, Preprocessing().std)
    preprocessing = info.preprocessing or Preprocessing(input_size=config.input_size, mean=mean, std=std)
    return Checkpoint(net.state_dict(), ModelInfo(MOBILENET, config, info.class_names, preprocessing))


def load_proto(path: Path) -> Any:
    onnx = require("onnx", "onnx")
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        model = onnx.load(str(path))
    except Exception as error:  # protobuf's DecodeError, a missing external-data file, ...
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(
            f"{path} is a damaged or foreign file, not ONNX ({first}): export or download it again"
        ) from None
    if not model.graph.node:
        raise ValueError(f"{path} holds no ONNX graph: export or download it again")
    return model


def walk(graph: Any, source: str) -> Graph:
    """The graph's convolutions (each with the BatchNorm that reads it), classifier and padding, in node order."""
    from onnx import numpy_helper

    values = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}
    found, by_output, pooled, padded = Graph(), {}, set(), set()
    for node in graph.node:
        op, inputs = node.op_type, list(node.input)
        settings = {a.name: onnx_attribute(a) for a in node.attribute}
        if op == "Constant" and "value" in settings:
            values[node.output[0]] = numpy_helper.to_array(settings["value"])
        elif op == "Identity" and inputs[0] in values:
            values[node.output[0]] = values[inputs[0]]
        elif op in ("GlobalAveragePool", "ReduceMean") or (op in PASS_THROUGH and inputs[0] in pooled):
            pooled.add(node.output[0])
        elif op == "Pad":
            padded.add(node.output[0])
        elif op == "Conv":
            weight, bias = values[inputs[1]], values.get(inputs[2]) if len(inputs) > 2 else None
            if inputs[0] in pooled:  # a 1x1 conv on the pooled features: the classifier
                found.classifier = (weight.reshape(len(weight), -1), classes_bias(bias, len(weight)))
                pooled.add(node.output[0])
                continue
            pads = list(settings.get("pads", [])) or [0, 0, 0, 0]
            auto = settings.get("auto_pad", b"NOTSET")
            uneven = pads[: len(pads) // 2] != pads[len(pads) // 2 :]
            found.tf_same |= uneven or auto in (b"SAME_UPPER", "SAME_UPPER") or inputs[0] in padded
            by_output[node.output[0]] = len(found.convs)
            found.convs.append(ConvNorm(weight, bias))
        elif op == "BatchNormalization" and inputs[0] in by_output:
            index = by_output[inputs[0]]
            norm = tuple(values[name] for name in inputs[1:5])
            found.convs[index] = ConvNorm(found.convs[index].weight, found.convs[index].bias, norm)
            # ONNX keeps eps as a float32: 1e-5 comes back as 9.99999975e-06, so read it to float32's precision
            found.bn_eps = found.bn_eps or float(f"{settings.get('epsilon', 1e-5):.6g}")
        elif op in ("Gemm", "MatMul") and inputs[0] in pooled:
            weight = values.get(inputs[1])
            if weight is None:
                raise ValueError(f"{source}: its classifier's weights are computed in the graph, not stored")
            trans = settings.get("transB", 0) if op == "Gemm" else 0
            weight = weight if trans else weight.T
            bias = values.get(inputs[2]) if len(inputs) > 2 else None
            found.classifier = (weight, classes_bias(bias, len(weight)))
            pooled.add(node.output[0])
        elif op == "Add" and found.classifier is not None and inputs[0] in pooled and inputs[1] in values:
            found.classifier = (found.classifier[0], found.classifier[1] + values[inputs[1]].reshape(-1))
    return found


def classes_bias(bias: np.ndarray | None, classes: int) -> np.ndarray:
    return np.zeros(classes, np.float32) if bias is None else bias.reshape(-1)


def onnx_attribute(attribute: Any) -> Any:
    from onnx import helper

    return helper.get_attribute_value(attribute)


def input_shape(graph: Any) -> tuple[int, int]:
    """The graph input's square size and channels (224 and 3 where they are not fixed)."""
    initializers = {tensor.name for tensor in graph.initializer}
    first = next(value for value in graph.input if value.name not in initializers)
    dims = [dim.dim_value or None for dim in first.type.tensor_type.shape.dim]
    channels = dims[1] if len(dims) == 4 and dims[1] else 3
    size = dims[2] if len(dims) == 4 and dims[2] and dims[2] == dims[3] else 224
    return size, channels
