"""The machine a result was measured on: figures of float arithmetic depend on the CPU's instruction set (which
kernels run) and on the thread count (how sums are split), so runs and benchmarks record them."""

from __future__ import annotations

import platform
from pathlib import Path


def cpu_name() -> str:
    """The CPU's model name ("AMD EPYC 7B13", say), or what the platform says where /proc/cpuinfo is not."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"
