"""Where ``optimize``'s time goes: PyTorch's profiler over one batch of MobileNetV2 1.0@224.

python benchmarks/profile_optimize.py [--threads 1] [--batch 32]
"""

from __future__ import annotations

import argparse

import torch
from torch.profiler import ProfilerActivity, profile

from mobilenet.inference.optimize import optimize
from mobilenet.registry import create_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = optimize(create_model("mobilenet_v2_100").eval(), sub_batch=None)
    x = torch.randn(args.batch, 3, 224, 224)
    model(x)
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        model(x)
    print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=10))


if __name__ == "__main__":
    main()
