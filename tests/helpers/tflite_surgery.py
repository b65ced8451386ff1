"""Test-only TFLite files of the kinds Google does not publish, cut from Google's own: built at test time.

Google's classifiers end ``AVERAGE_POOL_2D -> CONV_2D (1x1, 1001 classes) -> RESHAPE -> SOFTMAX``. From
one we make a headless backbone (the graph ends at the pooled features) and a Keras-style classifier
(a FULLY_CONNECTED layer over other classes), with the flatbuffers object API of ``ai-edge-litert``.
Weights stay Google's uint8 values with their own scale and zero point, so the files stay valid for
LiteRT and every number in them is still Google's.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _schema() -> tuple[Any, Any]:
    from ai_edge_litert import schema_py_generated
    from ai_edge_litert.tools import flatbuffer_utils

    return schema_py_generated, flatbuffer_utils


def _cut_after_pooling(source: Path) -> tuple[Any, Any, int, dict[int, Any]]:
    """The model, its graph cut right after its global pooling, the pooled tensor, and the ops cut by kind."""
    schema, flatbuffer_utils = _schema()
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(source.read_bytes()))
    graph = model.subgraphs[0]
    kinds = [max(code.builtinCode, code.deprecatedBuiltinCode) for code in model.operatorCodes]
    ops = graph.operators
    pool = next(i for i, op in enumerate(ops) if kinds[op.opcodeIndex] == schema.BuiltinOperator.AVERAGE_POOL_2D)
    graph.operators = ops[: pool + 1]
    # Google's TFLite Support metadata describes the 1001 probabilities that are gone: it goes too.
    model.metadata = [entry for entry in model.metadata or [] if entry.name != b"TFLITE_METADATA"]
    return model, graph, ops[pool].outputs[0], {kinds[op.opcodeIndex]: op for op in ops[pool + 1 :]}


def _write(model: Any, target: Path) -> Path:
    _, flatbuffer_utils = _schema()
    target.write_bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    return target


def headless(source: Path, target: Path) -> Path:
    """``source`` without its classifier: the output is the pooled features, reshaped to (1, channels)."""
    schema, _ = _schema()
    model, graph, pooled, cut = _cut_after_pooling(source)
    reshape = cut[schema.BuiltinOperator.RESHAPE]
    channels = graph.tensors[pooled].shape[-1]
    new_shape = graph.tensors[reshape.inputs[1]]
    model.buffers[new_shape.buffer].data = np.array([1, channels], np.int32).view(np.uint8)
    output = graph.tensors[reshape.outputs[0]]
    output.shape, output.quantization = [1, channels], graph.tensors[pooled].quantization
    reshape.inputs = [pooled, reshape.inputs[1]]
    graph.operators.append(reshape)
    graph.outputs = [reshape.outputs[0]]
    return _write(model, target)


def fully_connected(source: Path, target: Path, rows: Sequence[int]) -> Path:
    """``source`` with its 1x1 conv classifier made a FULLY_CONNECTED layer over the conv's ``rows`` only.

    The weights keep their uint8 values and per-tensor scale and zero point, the int32 bias its scale
    (input scale x weight scale): the quantization stays what LiteRT checks. The output is the logits.
    """
    schema, _ = _schema()
    model, graph, pooled, cut = _cut_after_pooling(source)
    conv = cut[schema.BuiltinOperator.CONV_2D]
    weight, bias, logits = (graph.tensors[i] for i in (*conv.inputs[1:3], conv.outputs[0]))
    rows = list(rows)
    values = np.asarray(model.buffers[weight.buffer].data).reshape(weight.shape[0], -1)
    model.buffers[weight.buffer].data = np.ascontiguousarray(values[rows]).reshape(-1)
    biases = np.asarray(model.buffers[bias.buffer].data).view(np.int32)
    model.buffers[bias.buffer].data = np.ascontiguousarray(biases[rows]).view(np.uint8)
    weight.shape, bias.shape, logits.shape = [len(rows), values.shape[1]], [len(rows)], [1, len(rows)]
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.FULLY_CONNECTED
    code.version = 1
    model.operatorCodes.append(code)
    layer = schema.OperatorT()
    layer.opcodeIndex = len(model.operatorCodes) - 1
    layer.inputs, layer.outputs = [pooled, conv.inputs[1], conv.inputs[2]], [conv.outputs[0]]
    layer.builtinOptionsType = schema.BuiltinOptions.FullyConnectedOptions
    layer.builtinOptions = schema.FullyConnectedOptionsT()
    graph.operators.append(layer)
    graph.outputs = [conv.outputs[0]]
    return _write(model, target)
