"""What the benchmark scripts share about the machine: its CPU's name, how busy all its cores have been,
and a help format that shows the docstring as written with every default."""

from __future__ import annotations

import argparse
import math
import platform
from pathlib import Path


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The docstring as written, and every option's default."""


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def busy_cpu_seconds(clock_ticks: int) -> float:
    """CPU seconds all cores have spent busy since boot (all but idle and iowait); NaN where unknown."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):  # not Linux: unknown
        return math.nan
    return (sum(values) - values[3] - values[4]) / clock_ticks
