"""``mobilenet pick``: the paper's Figure 5 for the user's own machine.

Every published MobileNetV2 width x resolution (the TF-slim checkpoint table) is timed here at batch 1
through the fastest inference path installed, and the one with the best published ImageNet top-1 that
fits a latency budget is recommended.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

from mobilenet.complexity.published import PUBLISHED_V2, PublishedCell
from mobilenet.inference.deploy import deploy
from mobilenet.registry import create_model
from mobilenet.tools.timing import median_and_p90, time_paths, torch_threads


@dataclass
class PickCell:
    width_mult: float
    resolution: int
    latency_ms: float  # batch 1, median over every call of every round
    latency_p90_ms: float
    top1: float  # published ImageNet top-1 (%) of the float TF-slim checkpoint
    madds_m: float  # published multiply-adds (millions)


@dataclass
class PickResult:
    budget_ms: float | None  # None: every cell timed, none picked (the paper report's Figure 5)
    backend: str
    precision: str
    threads: int
    cells: list[PickCell]
    choice: PickCell | None  # the best published top-1 within the budget; None if nothing fits
    out_of_order: list[str]  # cells ("0.35@224") timed slower than one of far more MAdds: noise, to time again

    def to_dict(self) -> dict:
        return asdict(self)


# A cell timed slower than one of this many times its multiply-adds is out of order: on a CPU, latency grows with
# the work, so such a timing was disturbed (another process, a frequency change) and is flagged, not believed.
OUT_OF_ORDER_MADDS = 1.5


def out_of_order(cells: Sequence[PickCell]) -> list[str]:
    """The cells whose latency exceeds that of a cell with :data:`OUT_OF_ORDER_MADDS` times their MAdds or more."""

    def disturbed(cell: PickCell) -> bool:
        return any(o.madds_m >= OUT_OF_ORDER_MADDS * cell.madds_m and o.latency_ms < cell.latency_ms for o in cells)

    return [f"{cell.width_mult:g}@{cell.resolution}" for cell in cells if disturbed(cell)]


def grid_cells(widths: Sequence[float] | None = None, resolutions: Sequence[int] | None = None) -> list[PublishedCell]:
    """The published V2 cells, optionally only some widths and resolutions."""
    cells = [
        cell
        for cell in PUBLISHED_V2
        if (widths is None or cell.width_mult in widths) and (resolutions is None or cell.resolution in resolutions)
    ]
    if not cells:
        known_widths = sorted({c.width_mult for c in PUBLISHED_V2})
        known_resolutions = sorted({c.resolution for c in PUBLISHED_V2})
        raise ValueError(
            f"no published MobileNetV2 cell has width in {widths} and resolution in {resolutions}: "
            f"the table has widths {known_widths} and resolutions {known_resolutions}"
        )
    return cells


def pick(
    budget_ms: float | None,
    threads: int = 2,
    widths: Sequence[float] | None = None,
    resolutions: Sequence[int] | None = None,
    backend: str = "auto",
    precision: str = "fp32",
    rounds: int = 3,
    calls: int = 20,
    progress: bool = False,
) -> PickResult:
    """Time each published cell through ``deploy(backend, precision)`` and pick the best within budget (None: time
    them all, pick none).

    int8 is calibrated on random tensors (random weights: only its speed is measured); the accuracy
    shown is always the published float top-1 (our int8 costs under a point, BENCHMARKS.md).
    """
    if budget_ms is not None and budget_ms <= 0:
        raise ValueError(f"the latency budget must be > 0 ms, got {budget_ms}")
    cells = grid_cells(widths, resolutions)
    runners, inputs = [], []
    with torch_threads(threads):
        for cell in cells:
            model = create_model("mobilenet_v2", width_mult=cell.width_mult, input_size=cell.resolution).eval()
            x = torch.randn(16 if precision == "int8" else 1, 3, cell.resolution, cell.resolution)
            calibration = x if precision == "int8" else None
            runners.append(deploy(model, backend, precision, calibration, threads))
            inputs.append((x[:1].clone(), None))
        samples = time_paths(runners, inputs, rounds, calls, progress)
    measured = []
    for cell, (latencies, _) in zip(cells, samples, strict=True):
        median, p90 = median_and_p90(latencies)
        measured.append(PickCell(cell.width_mult, cell.resolution, median, p90, cell.top1, cell.macs_m))
    fitting = [cell for cell in measured if budget_ms is not None and cell.latency_ms <= budget_ms]
    choice = max(fitting, key=lambda c: (c.top1, -c.latency_ms)) if fitting else None
    return PickResult(budget_ms, runners[0].backend, precision, threads, measured, choice, out_of_order(measured))
