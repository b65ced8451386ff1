"""A TFLite flatbuffer written from scratch: tensors, constant buffers, operators and metadata, one subgraph.

The schema's object API (``ai_edge_litert.schema_py_generated``, shipped with Google's runtime) packs the file;
this module only keeps the lists in order: buffer 0 is the empty one the format reserves, each operator code is
listed once with the highest version its uses need, and constants are stored little-endian in their own buffers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mobilenet.utils.optional import require

# TFLite's tensor types, by NumPy dtype (schema.fbs, TensorType).
TENSOR_TYPES = {np.dtype(np.float32): 0, np.dtype(np.int32): 2, np.dtype(np.uint8): 3, np.dtype(np.int64): 4,
                np.dtype(np.int8): 9}  # fmt: skip


def schema() -> Any:
    """TFLite's flatbuffer schema with its object API, from Google's runtime."""
    return require("ai_edge_litert.schema_py_generated", "tflite")


@dataclass(frozen=True)
class Grid:
    """An 8-bit tensor's quantization: ``real = (q - zero_point) * scale``, per tensor, or per channel along
    ``axis`` when ``scale`` has several entries (weights; their zero points are 0)."""

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int = 0

    @classmethod
    def per_tensor(cls, scale: float, zero_point: int) -> Grid:
        return cls((float(scale),), (int(zero_point),))


class TFLiteGraph:
    """One subgraph being written: add tensors and operators in execution order, then :meth:`serialize`."""

    def __init__(self) -> None:
        self.schema = schema()
        self.tensors: list[Any] = []
        self.operators: list[Any] = []
        self.buffers: list[Any] = [self.schema.BufferT()]  # buffer 0: the empty buffer of every non-constant tensor
        self.codes: dict[tuple[int, str], int] = {}  # (builtin code, custom name) -> index into operator_codes
        self.versions: dict[int, int] = {}
        self.metadata: list[tuple[str, bytes]] = []

    def tensor(
        self, name: str, shape: tuple[int, ...], dtype: Any, grid: Grid | None = None, data: np.ndarray | None = None
    ) -> int:
        """Add a tensor (a constant when ``data`` is given, stored as ``dtype``); its index."""
        tensor = self.schema.TensorT()
        tensor.name, tensor.shape, tensor.type = name, [int(n) for n in shape], TENSOR_TYPES[np.dtype(dtype)]
        tensor.buffer = 0 if data is None else self.buffer(np.ascontiguousarray(data, dtype=dtype).tobytes())
        if data is not None and tuple(np.shape(data)) != tuple(shape):
            raise ValueError(f"constant {name} has shape {np.shape(data)} for the tensor's {shape}")
        if grid is not None:
            quant = self.schema.QuantizationParametersT()
            quant.scale, quant.zeroPoint, quant.quantizedDimension = list(grid.scale), list(grid.zero_point), grid.axis
            tensor.quantization = quant
        self.tensors.append(tensor)
        return len(self.tensors) - 1

    def constant(self, name: str, values: np.ndarray, grid: Grid | None = None) -> int:
        """A constant tensor of ``values`` as they are (their dtype and shape)."""
        return self.tensor(name, values.shape, values.dtype, grid, values)

    def dequantized(self, tensor: int, name: str) -> int:
        """``tensor`` in float32: itself if it is float, else a DEQUANTIZE op's output."""
        if self.tensors[tensor].type == TENSOR_TYPES[np.dtype(np.float32)]:
            return tensor
        output = self.tensor(name, tuple(self.tensors[tensor].shape), np.float32)
        self.operator("DEQUANTIZE", [tensor], [output], version=2)
        return output

    def buffer(self, content: bytes) -> int:
        buffer = self.schema.BufferT()
        buffer.data = np.frombuffer(content, np.uint8)
        self.buffers.append(buffer)
        return len(self.buffers) - 1

    def operator(
        self, op: str, inputs: list[int], outputs: list[int], options: Any = None, version: int = 1, custom: bytes = b""
    ) -> None:
        """Add operator ``op`` (a BuiltinOperator name, or "CUSTOM:name" with flexbuffer ``custom`` options)."""
        builtin, _, custom_name = op.partition(":")
        code = getattr(self.schema.BuiltinOperator, builtin)
        key = (code, custom_name)
        if key not in self.codes:
            self.codes[key] = len(self.codes)
        self.versions[self.codes[key]] = max(self.versions.get(self.codes[key], 1), version)
        operator = self.schema.OperatorT()
        operator.opcodeIndex, operator.inputs, operator.outputs = self.codes[key], inputs, outputs
        if options is not None:
            operator.builtinOptionsType = getattr(self.schema.BuiltinOptions, type(options).__name__[:-1])
            operator.builtinOptions = options
        if custom:
            operator.customOptions = np.frombuffer(custom, np.uint8)
        self.operators.append(operator)

    def options(self, name: str, **fields: Any) -> Any:
        """A builtin options table (``Conv2DOptions`` ...) with ``fields`` set (schema's camelCase names)."""
        table = getattr(self.schema, f"{name}T")()
        for key, value in fields.items():
            if not hasattr(table, key):
                raise AttributeError(f"{name} has no field {key}")
            setattr(table, key, value)
        return table

    def serialize(self, inputs: list[int], outputs: list[int], description: str) -> bytes:
        """The whole file: the subgraph with its ``inputs`` and ``outputs``, the metadata entries, the buffers."""
        s = self.schema
        codes = []
        for (code, custom_name), index in sorted(self.codes.items(), key=lambda item: item[1]):
            entry = s.OperatorCodeT()
            entry.builtinCode, entry.deprecatedBuiltinCode = code, min(code, 127)  # 127: "look at builtin_code"
            entry.version = self.versions[index]
            if custom_name:
                entry.customCode = custom_name
            codes.append(entry)
        graph = s.SubGraphT()
        graph.tensors, graph.operators, graph.inputs, graph.outputs, graph.name = (
            self.tensors, self.operators, inputs, outputs, "main"
        )  # fmt: skip
        model = s.ModelT()
        model.version, model.description, model.operatorCodes, model.subgraphs = 3, description, codes, [graph]
        model.metadata = []
        for name, content in self.metadata:
            entry = s.MetadataT()
            entry.name, entry.buffer = name, self.buffer(content)
            model.metadata.append(entry)
        model.buffers = list(self.buffers)
        flatbuffers = require("flatbuffers", "tflite")
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())
