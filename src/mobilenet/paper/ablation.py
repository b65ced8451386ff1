"""Figure 6's two ablations, trained through the real trainer and read back from their run directories.

(a) the linear bottleneck against ReLU6 on the projections; (b) the shortcut between bottlenecks against
the shortcut between expansions against none. Each variant is trained with several seeds into
``<root>/<variant>-seed<N>/``; a sweep that stops part way continues where it stopped.
"""

from __future__ import annotations

import csv
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mobilenet.tasks import train
from mobilenet.training.checkpoint import POINTER
from mobilenet.training.config import TrainConfig
from mobilenet.utils.plotting import pyplot, save_figure

# The paper's design first; each other variant changes one switch of it (Sandler et al. 2018, Figure 6).
VARIANTS: dict[str, dict[str, Any]] = {
    "linear": {"linear_bottleneck": True, "shortcut": "bottleneck"},
    "relu6": {"linear_bottleneck": False, "shortcut": "bottleneck"},
    "expansion-shortcut": {"linear_bottleneck": True, "shortcut": "expansion"},
    "no-shortcut": {"linear_bottleneck": True, "shortcut": "none"},
}
LABELS = {
    "linear": "linear bottleneck, shortcut between bottlenecks (the paper's)",
    "relu6": "ReLU6 in the bottleneck",
    "expansion-shortcut": "shortcut between expansions",
    "no-shortcut": "no residual",
}
PANELS = {
    "(a) impact of non-linearity": ("linear", "relu6"),
    "(b) impact of residual": ("linear", "expansion-shortcut", "no-shortcut"),
}


@dataclass(frozen=True)
class VariantCurves:
    """Validation accuracy per epoch of one variant, one list per seed."""

    variant: str
    seeds: tuple[int, ...]
    top1: tuple[tuple[float, ...], ...]

    @property
    def final(self) -> list[float]:
        return [curve[-1] for curve in self.top1]

    def per_epoch(self) -> list[tuple[float, ...]]:
        """Every seed's top-1, epoch by epoch."""
        return list(zip(*self.top1, strict=True))


def run_dir(root: str | Path, variant: str, seed: int) -> Path:
    return Path(root) / f"{variant}-seed{seed}"


def run_ablation(
    base: TrainConfig, root: str | Path, seeds: Sequence[int], variants: Sequence[str] = tuple(VARIANTS)
) -> None:
    """Train every variant with every seed from ``base``, skipping finished runs and resuming cut ones."""
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise ValueError(f"unknown ablation variants {unknown}: choose from {', '.join(VARIANTS)}")
    for seed in seeds:  # seeds outermost: a sweep cut short still has every variant at the first seeds
        for variant in variants:
            path = run_dir(root, variant, seed)
            if (path / "summary.json").exists():
                continue
            if (path / POINTER).exists():
                train(resume=path)
            else:
                train(replace(base, seed=seed, out=str(path), options={**base.options, **VARIANTS[variant]}))


def read_ablation(root: str | Path) -> dict[str, VariantCurves]:
    """The finished runs under ``root``, by variant (only seeds every epoch of which was recorded)."""
    curves: dict[str, VariantCurves] = {}
    for variant in VARIANTS:
        seeds, tops = [], []
        for path in sorted(Path(root).glob(f"{variant}-seed*"), key=lambda p: int(p.name.rsplit("seed", 1)[1])):
            if not (path / "summary.json").exists():
                continue
            with open(path / "metrics.csv", newline="") as file:
                tops.append(tuple(float(row["val_top1"]) for row in csv.DictReader(file)))
            seeds.append(int(path.name.rsplit("seed", 1)[1]))
        if tops:
            epochs = min(len(top) for top in tops)
            curves[variant] = VariantCurves(variant, tuple(seeds), tuple(top[:epochs] for top in tops))
    if not curves:
        raise ValueError(f"{root} holds no finished ablation runs (<variant>-seed<N>/summary.json)")
    return curves


def ablation_rows(curves: dict[str, VariantCurves]) -> list[dict[str, Any]]:
    """Final validation top-1 per variant: mean, spread over seeds, and the gap to the paper's design."""
    reference = statistics.fmean(curves["linear"].final) if "linear" in curves else None
    rows = []
    for variant, curve in curves.items():
        final = curve.final
        mean = statistics.fmean(final)
        rows.append(
            {
                "variant": variant,
                "label": LABELS[variant],
                "seeds": len(final),
                "epochs": len(curve.top1[0]),
                "top1_mean": mean,
                "top1_std": statistics.stdev(final) if len(final) > 1 else 0.0,
                "top1_min": min(final),
                "top1_max": max(final),
                "gap_to_linear": None if reference is None else mean - reference,
            }
        )
    return rows


def plot_ablation(curves: dict[str, VariantCurves], path: str | Path) -> None:
    """Figure 6 as the paper draws it: validation accuracy against epoch, mean line and min-max band."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for axis, (title, variants) in zip(axes, PANELS.items(), strict=True):
        for variant in variants:
            if variant not in curves:
                continue
            curve = curves[variant]
            per_epoch = curve.per_epoch()
            epochs = range(1, len(per_epoch) + 1)
            mean = [statistics.fmean(epoch) for epoch in per_epoch]
            (line,) = axis.plot(epochs, mean, "o-", label=f"{LABELS[variant]} ({len(curve.seeds)} seeds)")
            low, high = [min(epoch) for epoch in per_epoch], [max(epoch) for epoch in per_epoch]
            axis.fill_between(epochs, low, high, color=line.get_color(), alpha=0.2)
        axis.set_title(title)
        axis.set_xlabel("epoch")
        axis.legend(fontsize=8, loc="lower right")
    axes[0].set_ylabel("validation top-1")
    fig.tight_layout()
    save_figure(fig, path)


# The paper's orderings (Figure 6): each pair reads "the first above the second".
PAPER_ORDER = (("linear", "relu6"), ("linear", "expansion-shortcut"), ("expansion-shortcut", "no-shortcut"))


def compare_to_paper(rows: list[dict[str, Any]]) -> list[str]:
    """For each of the paper's orderings: whether ours agrees, and whether the gap exceeds the seed spread."""
    by_variant = {row["variant"]: row for row in rows}
    findings = []
    for upper, lower in PAPER_ORDER:
        if upper not in by_variant or lower not in by_variant:
            continue
        a, b = by_variant[upper], by_variant[lower]
        gap = a["top1_mean"] - b["top1_mean"]
        spread = (a["top1_std"] ** 2 + b["top1_std"] ** 2) ** 0.5
        order = "as in the paper" if gap > 0 else "the reverse of the paper" if gap < 0 else "no difference"
        size = "beyond" if abs(gap) > spread else "within"
        findings.append(
            f"{LABELS[upper]} vs {LABELS[lower]}: {gap * 100:+.2f} points, {order}, {size} the seed spread "
            f"({spread * 100:.2f})"
        )
    return findings
