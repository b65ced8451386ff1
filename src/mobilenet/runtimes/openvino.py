"""OpenVINO: IRs written and read with mobilenet's metadata, and compiled into runners for this CPU."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from mobilenet.utils.optional import require

Runner = Callable[[torch.Tensor], list[torch.Tensor]]


def save_openvino(network: Any, path: Path, metadata: dict[str, str]) -> Path:
    """Write an OpenVINO IR (``path`` and its .bin) as it runs, fp32 or int8, with ``metadata`` in its rt_info."""
    ov = require("openvino", "openvino")
    for key, value in metadata.items():
        network.set_rt_info(value, [key])
    ov.save_model(network, path, compress_to_fp16=False)
    return path


def read_openvino(path: Path, keys: tuple[str, ...]) -> tuple[Any, dict[str, str]]:
    """An IR as an ``openvino.Model`` and those of ``keys`` that its rt_info holds; a file OpenVINO cannot read is
    refused in one line."""
    ov = require("openvino", "openvino")
    try:
        network = ov.Core().read_model(path)
    except RuntimeError as error:
        first = next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)
        raise ValueError(f"{path} is not an OpenVINO IR that OpenVINO reads ({first[:160]}): export it again") from None
    return network, {key: network.get_rt_info([key]).astype(str) for key in keys if network.has_rt_info([key])}


def is_int8(network: Any) -> bool:
    """Whether an ``openvino.Model`` runs quantized (it holds FakeQuantize operations)."""
    return any(op.get_type_name() == "FakeQuantize" for op in network.get_ops())


def ir_bytes(path: Path) -> int:
    """The size of an OpenVINO IR: the .xml and its .bin."""
    return path.stat().st_size + path.with_suffix(".bin").stat().st_size


def openvino_runner(network: Any, precision: str, threads: int | None = None) -> Runner:
    """An ``openvino.Model`` compiled for this CPU, as a runner from a float batch to its outputs."""
    ov = require("openvino", "openvino")
    # OpenVINO's default on CPUs with bf16 is bf16: fp32 and int8 must ask for f32 explicitly.
    config: dict[str, Any] = {
        "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
        "PERFORMANCE_HINT": "LATENCY",  # one stream using every thread: a single caller
    }
    if threads is not None:
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = ov.Core().compile_model(network, "CPU", config)
    request = compiled.create_infer_request()

    def run(x: torch.Tensor) -> list[torch.Tensor]:
        results = request.infer({0: x.numpy()})
        return [torch.from_numpy(results[output].copy()) for output in compiled.outputs]  # the request reuses them

    return run
