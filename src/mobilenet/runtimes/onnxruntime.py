"""ONNX Runtime: a session on an ONNX file (or its bytes) on this CPU, and a runner from a float batch to its
outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from mobilenet.runtimes.openvino import Runner
from mobilenet.utils.optional import require


def ort_session(model: str | Path | bytes, threads: int | None = None, optimized: bool = True) -> Any:
    """An ``onnxruntime.InferenceSession`` on the CPU with every graph optimization: ``threads`` intra-op threads
    (None: ONNX Runtime's default, one per physical core), one inter-op (a chain of convolutions has nothing to
    run in parallel). ``optimized=False`` runs the graph as written: a QDQ int8 file then computes each
    QuantizeLinear/DequantizeLinear pair in float, exactly, instead of in its int8 kernels."""
    ort = require("onnxruntime", "onnx")
    options = ort.SessionOptions()
    level = ort.GraphOptimizationLevel
    options.graph_optimization_level = level.ORT_ENABLE_ALL if optimized else level.ORT_DISABLE_ALL
    options.intra_op_num_threads = threads or 0
    options.inter_op_num_threads = 1
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def ort_runner(session: Any) -> Runner:
    """A session whose input is ``images`` as a runner: a float batch in, every output as a tensor."""
    return lambda x: [torch.from_numpy(output) for output in session.run(None, {"images": x.numpy()})]


# Operators that only a quantized graph holds.
QUANTIZED_OPS = {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "ConvInteger", "QLinearMatMul", "MatMulInteger"}


def read_onnx(path: Path, keys: tuple[str, ...]) -> tuple[Any, dict[str, str]]:
    """An ONNX file's ``ModelProto`` and those of ``keys`` that its metadata holds; a file that does not parse as ONNX
    is refused in one line."""
    onnx = require("onnx", "onnx")
    try:
        proto = onnx.load(str(path))
    except Exception as error:  # protobuf's DecodeError and its kin: the bytes are not an ONNX model
        raise ValueError(f"{path} is not a complete ONNX file ({type(error).__name__}): export it again") from None
    if not proto.graph.node:
        raise ValueError(f"{path} is not an ONNX model: its graph has no operators")
    return proto, {prop.key: prop.value for prop in proto.metadata_props if prop.key in keys}


def onnx_precision(proto: Any) -> str:
    """ "int8" for a graph with quantized operators, else "fp32"."""
    return "int8" if any(node.op_type in QUANTIZED_OPS for node in proto.graph.node) else "fp32"


def onnx_outputs(proto: Any) -> list[str]:
    """The names of a graph's outputs, in order."""
    return [output.name for output in proto.graph.output]
