"""Streaming inference (MobileNetV2 paper, Section 5) against the plain model: memory held and time per forward.

    python benchmarks/streaming_memory.py [--groups 1 2 4 8] [--repeats 21] [--quick]

The model: mobilenet_v2 1.0 with random weights (memory and time do not depend on their values), batch 1
at 224x224, float32, eval mode, under ``torch.no_grad()``. The variants: the plain model, and
``streaming_model(model, k)`` for each ``--groups`` k (every expanding block, and the stem with the first
block, computed in k groups of channels). Three measurements of each:

(1) Peak live activation bytes: ``peak_live_bytes`` (mobilenet.complexity.activations) of one forward, the
most bytes of tensor storage alive at once, counted op by op: the input included, the weights not, nor
what a kernel allocates and frees within one op. Exact and deterministic; measured in this process, which
also checks that the variant's logits equal the plain model's (max abs difference).

(2) Peak RSS growth of one forward, in a fresh child process per variant, run with
``MALLOC_MMAP_THRESHOLD_=65536``: glibc then serves every buffer of 64 KiB or more with mmap and unmaps it
when freed, so memory freed by one forward is back with the OS before the next (by default glibc raises
that threshold as buffers are freed and keeps them in its heap, hiding the next forward's growth).
A peak RSS is a high-water mark, so no plain "before" is honest: right after building it already holds
the construction's transients (``streaming_model``'s deep copy), and after a warm-up forward that
forward's own peak. Two children (built / built and run) would not do either: the first forward also pays
one-time costs (oneDNN's kernels, OpenMP's threads). So each child builds the model, runs ``--warmup``
forwards, then resets the kernel's high-water mark to the current RSS (writes 5 to
``/proc/self/clear_refs``, Linux 4.0 and later), reads its RSS, runs one forward and reads the high-water
mark (``VmRSS`` and ``VmHWM`` of ``/proc/self/status``). The difference is what that forward added at its
peak, to the page, kernels' scratch and oneDNN's reordered copies included, which (1) leaves out.
``getrusage``'s ``ru_maxrss`` would not do: it also keeps the peak of the address space replaced at
``exec``, which for a child of this script is this process's, models and all. Without /proc: n/a.

(3) Time per forward: in the same child after (2), with ``torch.set_num_threads(2)`` (set first, so (2)
ran with it too): the median and the min of ``--repeats`` forwards, and the share of all cores that other
processes took meanwhile (``/proc/stat``), which slows a run on a shared machine.

``--quick``: 1 warm-up forward and 3 timed ones, to check that the script runs, not to measure.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from machine import HelpFormatter, LoadMeter, cpu_name  # benchmarks/machine.py, beside this script
from torch import nn

from mobilenet.complexity.activations import peak_live_bytes
from mobilenet.nn.model import MobileNet
from mobilenet.nn.streaming import streaming_model
from mobilenet.registry import create_model

SIZE, THREADS, MIB = 224, 2, 2**20
MMAP_THRESHOLD = "65536"  # bytes: glibc returns every freed buffer of this size or more to the OS


def build(variant: str) -> nn.Module:
    """The plain model ("plain") or its streaming copy in ``int(variant)`` groups, in eval mode."""
    torch.manual_seed(0)
    model: MobileNet = create_model("mobilenet_v2").eval()  # type: ignore[assignment]
    return model if variant == "plain" else streaming_model(model, int(variant))


def memory_status(field: str) -> int:
    """``VmRSS`` (resident memory) or ``VmHWM`` (its high-water mark) of this process, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024  # kB
    raise OSError(f"no {field} in /proc/self/status")


def peak_rss_growth(forward: Callable[[], object]) -> tuple[float, float]:
    """The RSS before ``forward()`` and how much it grew at most meanwhile, in bytes; NaN without /proc."""
    try:
        Path("/proc/self/clear_refs").write_text("5")  # the high-water mark := the current RSS
        before = memory_status("VmRSS")
    except OSError:
        forward()
        return math.nan, math.nan
    forward()
    return before, memory_status("VmHWM") - before


def child(variant: str, warmup: int, repeats: int) -> dict[str, float]:
    """(2) and (3) for one variant, in this fresh process."""
    torch.set_num_threads(THREADS)
    model = build(variant)
    x = torch.randn(1, 3, SIZE, SIZE)
    with torch.no_grad():
        for _ in range(warmup):
            model(x)
        gc.collect()
        before, growth = peak_rss_growth(lambda: model(x))
        times = []
        meter = LoadMeter()
        busy, own, start = meter.busy(), time.process_time(), time.perf_counter()
        for _ in range(repeats):
            begin = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - begin)
        wall, own = time.perf_counter() - start, time.process_time() - own
        others = meter.share(busy, wall, own)
    return {
        "rss_before": before,
        "rss_growth": growth,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "others": others,
    }


def run_child(variant: str, warmup: int, repeats: int) -> dict[str, float]:
    argv = [sys.executable, __file__, "--child", variant, "--warmup", str(warmup), "--repeats", str(repeats)]
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": MMAP_THRESHOLD}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def ratio(value: float, plain: float) -> str:
    return "n/a" if math.isnan(value) or math.isnan(plain) or not plain else f"{value / plain:.2f}"


def mib(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value / MIB:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--groups", type=int, nargs="+", default=[1, 2, 4, 8], help="k of the streaming variants")
    parser.add_argument("--repeats", type=int, default=21, help="timed forwards per variant")
    parser.add_argument("--warmup", type=int, default=3, help="untimed forwards before measuring RSS and time")
    parser.add_argument("--quick", action="store_true", help="1 warm-up and 3 timed forwards: a check that it runs")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: measure one variant in this process
    args = parser.parse_args()
    if args.quick:
        args.warmup, args.repeats = 1, 3
    if args.child:
        print(json.dumps(child(args.child, args.warmup, args.repeats)))
        return

    print(f"command: `python {shlex.join(['benchmarks/streaming_memory.py', *sys.argv[1:]])}`\n")
    print(
        f"mobilenet_v2 1.0, batch 1 at {SIZE}x{SIZE}, float32, eval, no_grad; {cpu_name()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}, {THREADS} threads; RSS children with MALLOC_MMAP_THRESHOLD_={MMAP_THRESHOLD}\n"
    )
    torch.set_num_threads(THREADS)
    x = torch.randn(1, 3, SIZE, SIZE)
    variants = ["plain", *map(str, args.groups)]
    rows = {}
    with torch.no_grad():
        expected = build("plain")(x)
        for variant in variants:
            model = build(variant)
            difference = (model(x) - expected).abs().max().item()
            rows[variant] = {"peak": peak_live_bytes(model, x), "difference": difference}
            rows[variant] |= run_child(variant, args.warmup, args.repeats)
    plain = rows["plain"]
    print(
        "| variant | peak live MiB | x plain | RSS growth MiB | x plain | RSS before MiB "
        "| ms/forward median | min | x plain | others' load | max abs diff of logits |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for variant, row in rows.items():
        name = "plain" if variant == "plain" else f"streaming k={variant}"
        print(
            f"| {name} | {mib(row['peak'])} | {ratio(row['peak'], plain['peak'])} | {mib(row['rss_growth'])} "
            f"| {ratio(row['rss_growth'], plain['rss_growth'])} | {mib(row['rss_before'])} "
            f"| {row['median_s'] * 1000:.1f} | {row['min_s'] * 1000:.1f} | {ratio(row['median_s'], plain['median_s'])} "
            f"| {'n/a' if math.isnan(row['others']) else format(row['others'], '.0%')} | {row['difference']:.1e} |"
        )


if __name__ == "__main__":
    main()
