"""Batch-1 latency of ``deploy(..., "onnxruntime")`` against plain ONNX Runtime sessions on the same file.

    python benchmarks/ort_sessions.py

MobileNetV2 1.0@224, 2 threads, 5 interleaved rounds of 20 calls with a pause between sessions.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch

from mobilenet.inference.deploy import deploy
from mobilenet.inference.export import export_onnx
from mobilenet.registry import create_model
from mobilenet.utils.optional import require


def main() -> None:
    warnings.filterwarnings("ignore")
    ort = require("onnxruntime", "onnx")
    model = create_model("mobilenet_v2_100").eval()
    path = Path(tempfile.mkdtemp()) / "model.onnx"
    export_onnx(model, path)

    def session(inter_op_threads: int | None):
        options = ort.SessionOptions()
        options.intra_op_num_threads = 2
        if inter_op_threads is not None:
            options.inter_op_num_threads = inter_op_threads
        run = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]).run
        return lambda x: run(None, {"images": x.numpy()})[0]

    paths = {
        "plain session": session(None),
        "plain, 1 inter-op thread": session(1),
        "deploy": deploy(model, "onnxruntime", threads=2),
    }
    x = torch.randn(1, 3, 224, 224)
    times: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(5):
        for name, run in paths.items():
            time.sleep(0.2)
            run(x)
            for _ in range(20):
                start = time.perf_counter()
                run(x)
                times[name].append(time.perf_counter() - start)
    for name, values in times.items():
        print(f"{name}: {statistics.median(values) * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
