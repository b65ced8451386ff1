"""Images/s of one bare training step (forward, backward, SGD) by memory format and autocast.

    python benchmarks/train_step_formats.py [--width 0.5] [--input-size 32] [--batch 128]

MobileNetV2 with the CIFAR stride adaptation, random data, PyTorch's default thread count.
"""

from __future__ import annotations

import argparse
import time

import torch

from mobilenet.registry import create_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, args.input_size, args.input_size)
    y = torch.randint(0, 10, (args.batch,))
    for channels_last, bf16 in [(False, False), (True, False), (False, True), (True, True)]:
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        model = create_model("mobilenet_v2", width_mult=args.width, num_classes=10, input_size=args.input_size,
                             small_input=True).train().to(memory_format=fmt)  # fmt: skip
        images = x.to(memory_format=fmt)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        for step in range(8):  # 2 warm-up steps, 6 timed
            if step == 2:
                start = time.perf_counter()
            with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                loss = torch.nn.functional.cross_entropy(model(images), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        rate = 6 * args.batch / (time.perf_counter() - start)
        print(f"channels_last={channels_last}, bf16 autocast={bf16}: {rate:.0f} images/s")


if __name__ == "__main__":
    main()
