"""Throughput of ``optimize`` at batch 32 by the size of the slices it runs a batch in (``SUB_BATCH``).

    python benchmarks/sub_batch.py [--threads 2] [--rounds 3]

MobileNetV2 1.0@224, random weights; ONNX Runtime fp32 (``deploy``) timed in the same rounds for the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch

from mobilenet.inference.deploy import deploy
from mobilenet.inference.optimize import optimize
from mobilenet.registry import create_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    model = create_model("mobilenet_v2_100").eval()
    paths = {f"optimize sub_batch={k}": optimize(model, sub_batch=k) for k in (None, 1, 2, 4, 8)}
    paths["deploy onnxruntime fp32"] = deploy(model, "onnxruntime", threads=args.threads)
    x = torch.randn(32, 3, 224, 224)
    for run in paths.values():
        run(x)
    rates: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(args.rounds):
        for name, run in paths.items():
            start = time.perf_counter()
            run(x), run(x)
            rates[name].append(2 * len(x) / (time.perf_counter() - start))
    ort = statistics.median(rates["deploy onnxruntime fp32"])
    for name, values in rates.items():
        rate = statistics.median(values)
        print(f"{name}: {rate:.1f} images/s at batch 32 (ONNX Runtime / this: {ort / rate:.2f}x)")


if __name__ == "__main__":
    main()
