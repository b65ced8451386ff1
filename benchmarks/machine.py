"""What the benchmark scripts share about the machine: its CPU's name (the library's), how busy all its cores have
been, and a help format that shows the docstring as written with every default."""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

from mobilenet.utils.machine import cpu_name  # noqa: F401 (the scripts import it from here)


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The docstring as written, and every option's default."""


def busy_cpu_seconds(clock_ticks: int) -> float:
    """CPU seconds all cores have spent busy since boot (all but idle and iowait); NaN where unknown."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):  # not Linux: unknown
        return math.nan
    return (sum(values) - values[3] - values[4]) / clock_ticks


class LoadMeter:
    """How much CPU others (processes, the hypervisor's steal) took while a measurement ran; NaN where unknown."""

    def __init__(self) -> None:
        self.cpus = os.cpu_count() or 1
        self.tick = os.sysconf("SC_CLK_TCK")

    def busy(self) -> float:
        """CPU seconds all cores have been busy so far: read it before a measurement."""
        return busy_cpu_seconds(self.tick)

    def others_seconds(self, busy_before: float, own_cpu: float) -> float:
        """CPU seconds others took since ``busy_before``, not counting ``own_cpu`` (the measured code's)."""
        after = self.busy()
        if math.isnan(busy_before) or math.isnan(after):
            return math.nan
        return max(after - busy_before - own_cpu, 0.0)

    def share(self, busy_before: float, wall: float, own_cpu: float) -> float:
        """What others took during ``wall`` seconds, as a share of all cores."""
        return self.others_seconds(busy_before, own_cpu) / (wall * self.cpus)

    def measure(self, run: Callable[[], None]) -> tuple[float, float]:
        """Wall seconds of ``run()`` and the CPU seconds that others took meanwhile."""
        busy, own, start = self.busy(), time.process_time(), time.perf_counter()
        run()
        wall = time.perf_counter() - start
        return wall, self.others_seconds(busy, time.process_time() - own)
