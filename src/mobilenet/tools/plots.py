"""PNG figures of the tools: per-layer cost, speed per inference path, accuracy against latency."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mobilenet.complexity.profile import Profile
from mobilenet.utils.plotting import pyplot, save_figure

if TYPE_CHECKING:
    from mobilenet.tools.bench import BenchResult
    from mobilenet.tools.pick import PickResult


def plot_profile(result: Profile, path: str | Path) -> None:
    """Bars of multiply-adds and parameters per layer."""
    plt = pyplot()
    layers = [layer for layer in result.layers if layer.operator != "avgpool"]
    names = [layer.name.replace("features.", "") for layer in layers]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    top.bar(names, [layer.madds / 1e6 for layer in layers], color="tab:blue")
    top.set_ylabel("MAdds (M)")
    top.set_title(
        f"{result.model} width {result.width_mult:g} @ {result.resolution}: "
        f"{result.madds / 1e6:.1f}M MAdds, {result.params / 1e6:.2f}M parameters"
    )
    bottom.bar(names, [layer.params / 1e6 for layer in layers], color="tab:orange")
    bottom.set_ylabel("parameters (M)")
    bottom.set_xlabel("layer (features index)")
    bottom.tick_params(axis="x", rotation=90)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def plot_bench(results: list[BenchResult], path: str | Path) -> None:
    """Per benchmarked cell: batch-1 latency and batch-N throughput of every path, with the compute floor."""
    plt = pyplot()
    fig, axes = plt.subplots(len(results), 2, figsize=(12, 0.45 * len(results[0].paths) * len(results) + 1.5))
    for (latency, throughput), result in zip(axes.reshape(len(results), 2), results, strict=True):
        names = [p.name for p in result.paths][::-1]
        latency.barh(names, [p.b1_ms for p in result.paths][::-1], color="tab:blue")
        latency.axvline(result.floor_b1_ms, color="black", linestyle="--", label="fp32 compute floor")
        latency.set_xscale("log")
        latency.set_xlabel("batch-1 latency (ms, median, log scale)")
        latency.set_title(f"{result.arch} {result.width_mult:g}@{result.resolution}, {result.threads} threads")
        latency.legend(loc="lower right")
        throughput.barh(names, [p.throughput for p in result.paths][::-1], color="tab:green")
        throughput.axvline(result.floor_throughput, color="black", linestyle="--")
        throughput.set_xlabel(f"batch-{result.batch} throughput (images/s)")
        throughput.set_yticks([])
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def plot_pick(result: PickResult, path: str | Path) -> None:
    """Published top-1 against latency measured here, a line per width and a marker per resolution: the paper's
    Figure 5. The budget is drawn where it falls among the cells; cells timed out of order are ringed."""
    plt = pyplot()
    fig, axis = plt.subplots(figsize=(8, 5.5))
    resolutions = sorted({c.resolution for c in result.cells})
    markers = dict(zip(resolutions, "osD^vP*X<>", strict=False))
    for width in sorted({c.width_mult for c in result.cells}):
        cells = sorted((c for c in result.cells if c.width_mult == width), key=lambda c: c.resolution)
        (line,) = axis.plot([c.latency_ms for c in cells], [c.top1 for c in cells], "-", label=f"width {width:g}")
        for cell in cells:
            axis.plot(cell.latency_ms, cell.top1, markers.get(cell.resolution, "o"), color=line.get_color())
    for resolution in resolutions:  # the markers' key, as legend entries without data
        axis.plot([], [], markers.get(resolution, "o"), color="gray", label=f"{resolution} px")
    flagged = [c for c in result.cells if f"{c.width_mult:g}@{c.resolution}" in result.out_of_order]
    if flagged:
        axis.plot([c.latency_ms for c in flagged], [c.top1 for c in flagged], "o", markersize=14, fillstyle="none",
                  color="red", label="out of order (noise?)")  # fmt: skip
    low = min(c.latency_ms for c in result.cells)
    high = max(c.latency_ms for c in result.cells)
    axis.set_xlim(low / 1.25, high * 1.25)
    budget = result.budget_ms
    if budget is not None and low / 1.25 <= budget <= high * 1.25:
        axis.axvline(budget, color="black", linestyle="--", label=f"budget {budget:g} ms")
    elif budget is not None:
        side = "every cell fits" if budget > high else "no cell fits"
        axis.plot([], [], " ", label=f"budget {budget:g} ms: off the chart ({side})")
    if result.choice is not None:
        axis.plot(result.choice.latency_ms, result.choice.top1, "*", color="red", markersize=16,
                  label=f"pick: {result.choice.width_mult:g}@{result.choice.resolution}")  # fmt: skip
    axis.set_xscale("log")
    axis.set_xlabel(f"batch-1 latency here (ms, {result.backend} {result.precision}, {result.threads} threads)")
    axis.set_ylabel("published ImageNet top-1 (%, TF-slim)")
    axis.set_title("MobileNetV2: accuracy against latency on this machine")
    axis.legend(fontsize=7, ncol=2, loc="lower right")
    axis.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
