"""The machine a result was measured on: figures of float arithmetic depend on the CPU's instruction set (which
kernels run) and on the thread count (how sums are split), so runs and benchmarks record them."""

from __future__ import annotations

import platform
from pathlib import Path

import torch


def cpuinfo(field: str) -> str | None:
    """The first CPU's ``field`` in /proc/cpuinfo, or None (not Linux, or no such field)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":", 1)[0].strip() == field:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_name() -> str:
    """The CPU's model name ("AMD EPYC 7B13", say), or what the platform says where /proc/cpuinfo is not."""
    return cpuinfo("model name") or platform.processor() or "unknown CPU"


def cpu_flags() -> frozenset[str] | None:
    """The CPU's instruction-set flags as Linux lists them ("avx2", "avx512_vnni", ...), or None where unknown."""
    flags = cpuinfo("flags")
    return None if flags is None else frozenset(flags.split())


def bf16_supported() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX), where bf16 is a speed-up."""
    # oneDNN's own check: without native bf16 it emulates it, slower than fp32.
    return torch.backends.mkldnn.is_available() and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
