"""ONNX Runtime: a session on an ONNX file (or its bytes) on this CPU, and a runner from a float batch to its
outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from mobilenet.runtimes.openvino import Runner
from mobilenet.utils.optional import require


def ort_session(model: str | Path | bytes, threads: int | None = None) -> Any:
    """An ``onnxruntime.InferenceSession`` on the CPU with every graph optimization: ``threads`` intra-op threads
    (None: ONNX Runtime's default, one per physical core), one inter-op (a chain of convolutions has nothing to
    run in parallel)."""
    ort = require("onnxruntime", "onnx")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or 0
    options.inter_op_num_threads = 1
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def ort_runner(session: Any) -> Runner:
    """A session whose input is ``images`` as a runner: a float batch in, every output as a tensor."""
    return lambda x: [torch.from_numpy(output) for output in session.run(None, {"images": x.numpy()})]
