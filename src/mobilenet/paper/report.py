"""``mobilenet paper``: the MobileNetV2 paper's tables and figures beside ours, measured on this machine.

One Markdown file with its PNGs. Each section says whether the paper's figure is reproduced here, and
why not where it cannot be (a phone we do not have, a dataset not on this machine, a task not built).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from mobilenet.complexity.activations import peak_live_bytes
from mobilenet.complexity.memory import PAPER_MAX_KB, memory_table
from mobilenet.complexity.profile import paper_table, profile
from mobilenet.kinds import resolve
from mobilenet.nn.streaming import streaming_model
from mobilenet.paper.ablation import PAPER_ORDER, ablation_rows, compare_to_paper, plot_ablation, read_ablation
from mobilenet.paper.manifold import DIMENSIONS, plot_manifold, recoverable_share
from mobilenet.registry import create_model, kinds
from mobilenet.utils.files import atomic_text

REPRODUCED, PARTLY, NOT_HERE, NOT_RUN = "reproduced", "partly reproduced", "not reproducible here", "not run"

# Sandler et al. 2018, Table 4 (ImageNet; latency on a Pixel 1 phone): top-1 %, parameters (M), MAdds (M).
PAPER_TABLE4 = {
    "MobileNetV1": ("mobilenet_v1", 1.0, 70.6, 4.2, 575),
    "MobileNetV2": ("mobilenet_v2", 1.0, 72.0, 3.4, 300),
    "MobileNetV2 (1.4)": ("mobilenet_v2", 1.4, 74.7, 6.9, 585),
}


@dataclass(frozen=True)
class Section:
    title: str
    verdict: str
    body: str  # Markdown


@dataclass(frozen=True)
class ReportSettings:
    out: Path
    quick: bool = False
    ablation: Path | None = None  # a finished Figure 6 sweep (benchmarks/figure6.py)
    evaluate: Callable[[], float] | None = None  # top-1 (0..1) of published weights on the user's images
    weights_note: str = ""


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def table2(_: ReportSettings) -> Section:
    result = profile("mobilenet_v2", 1.0, 224)
    rows = [
        ["x".join(map(str, r.input_shape)), r.operator, "-" if r.t is None else f"{r.t:g}", r.c, r.n, r.s]
        for r in paper_table(result)
    ]
    body = markdown_table(["input", "operator", "t", "c", "n", "s"], rows)
    counted = f"{result.params / 1e6:.2f}M parameters, {result.madds / 1e6:.1f}M MAdds"
    body += f"\n\nBuilt from the table as data (`mobilenet.nn.tables`); counted: {counted}."
    return Section("Table 2: the MobileNetV2 architecture", REPRODUCED, body)


def table3(_: ReportSettings) -> Section:
    parts = []
    for arch in ("mobilenet_v1", "mobilenet_v2"):
        rows = memory_table(create_model(arch))
        table: list[list[object]] = [
            [
                f"{r.size}x{r.size}",
                f"{r.largest.channels}/{r.largest.kilobytes:.1f}",
                f"{r.paper_channels}/{r.paper_kilobytes:g}",
            ]
            for r in rows
        ]
        largest = max(r.largest.kilobytes for r in rows)
        table.append(["max", f"{largest:.1f}K", f"{PAPER_MAX_KB[arch]}K"])
        parts.append(f"**{arch}** (channels/Kb, 16-bit floats)\n\n" + markdown_table(["size", "ours", "paper"], table))
    unstreamed = max(r.largest.kilobytes for r in memory_table(create_model("mobilenet_v2"), streamed=False))
    parts.append(
        "The maxima agree. The paper's V2 rows at 56, 28 and 14 list the next stage's channels (32, 64, 160); "
        "the largest bottleneck that exists at those sizes is 24, 32 and 96. V1's 7x7 row reads 199 Kb for "
        f"1024 channels (100 Kb). Without Section 5's streaming, V2 would hold {unstreamed:.0f}K "
        "(its 96-channel expansion at 112x112). `mobilenet profile --memory` prints this for any width."
    )
    return Section("Table 3: memory at each resolution", REPRODUCED, "\n\n".join(parts))


def table4(settings: ReportSettings) -> Section:
    rows = []
    for name, (arch, width, top1, params_m, madds_m) in PAPER_TABLE4.items():
        result = profile(arch, width, 224)
        ours = [f"{result.params / 1e6:.2f}M", f"{madds_m}M", f"{result.madds / 1e6:.0f}M"]
        rows.append([name, f"{top1}", f"{params_m}M", *ours])
    body = markdown_table(["network", "paper top-1", "paper params", "ours", "paper MAdds", "ours"], rows)
    body += (
        "\n\nMAdds agree to about 1% (V1's 575M is 569M in TF-slim's own table, as we count). The paper's "
        "6.9M parameters for width 1.4 is not what the architecture gives: TF-slim's own checkpoint table "
        "lists 6.06M, as we count. Latency (a Pixel 1 phone) is not "
        "reproducible here; Figure 5 below times this machine instead."
    )
    verdict = PARTLY
    if settings.evaluate is not None:
        body += f"\n\nTop-1 of {settings.weights_note}: **{settings.evaluate():.1%}**."
    else:
        body += "\n\nTop-1 needs ImageNet's validation set, which is not here: pass `--weights` and `--images`."
    return Section("Table 4: ImageNet", verdict, body)


def kind_tables(settings: ReportSettings) -> list[Section]:
    """The paper's tables that the registered kinds of model recompute (Tables 5-6 and 7: detection and
    segmentation), in the paper's order."""
    tables = [resolve(ref)(settings.quick) for kind in kinds() for ref in kind.tables.values()]
    return [Section(table.title, table.verdict, table.markdown()) for table in sorted(tables, key=lambda t: t.number)]


def figure1(settings: ReportSettings) -> Section:
    plot_manifold(settings.out / "figure1.png")
    shares = recoverable_share(seeds=5 if settings.quick else 20)
    shown = [["recoverable share", *(f"{shares[n]:.3f}" for n in DIMENSIONS)]]
    table = markdown_table(["n", *map(str, DIMENSIONS)], shown)
    body = (
        "![Figure 1](figure1.png)\n\nA 2-D spiral embedded in n dimensions by a random T, through ReLU, back "
        "through T's pseudo-inverse. A point is recoverable when the rows of T still active there have rank "
        f"2; the share over {5 if settings.quick else 20} seeds:\n\n{table}\n\nCollapse at n = 2-3, almost "
        "nothing lost from 15 on: the paper's claim."
    )
    verdict = REPRODUCED if shares[2] < 0.6 and shares[3] < 0.6 and shares[15] > 0.99 else PARTLY
    return Section("Figure 1: ReLU on a low-dimensional manifold", verdict, body)


def figure5(settings: ReportSettings) -> Section:
    from mobilenet.tools.pick import pick
    from mobilenet.tools.plots import plot_pick

    if settings.quick:
        result = pick(None, widths=(0.35, 1.0), resolutions=(96, 224), rounds=2, calls=5, backend="eager")
    else:
        result = pick(None, backend="eager")
    plot_pick(result, settings.out / "figure5.png")
    rows = [[f"{c.width_mult:g}", c.resolution, f"{c.latency_ms:.2f}", f"{c.top1}"] for c in result.cells]
    body = (
        "![Figure 5](figure5.png)\n\n"
        + markdown_table(["width", "resolution", "ms here (batch 1)", "published top-1"], rows)
        + f"\n\nTimed on this machine's CPU ({result.threads} threads, eager PyTorch); the paper timed a Pixel 1. "
        "The accuracies are TF-slim's published ones: ImageNet's validation set is not here. "
        "`mobilenet pick` does this with every inference path."
    )
    if result.out_of_order:
        body += (
            f" Timed out of order here, so disturbed while they ran (ringed in red): {', '.join(result.out_of_order)};"
            " a quiet machine and more rounds time them in order."
        )
    # Latency is measured here; the accuracies are TF-slim's published ones, not measured on ImageNet here.
    return Section("Figure 5: accuracy against latency", PARTLY, body)


def section5(settings: ReportSettings) -> Section:
    resolution = 96 if settings.quick else 224
    model = create_model("mobilenet_v2").eval()
    x = torch.randn(1, 3, resolution, resolution)
    rows = []
    with torch.inference_mode():
        plain = peak_live_bytes(model, x)
        rows.append(["plain", f"{plain / 1e6:.2f}", "1.00"])
        for groups in (2, 4, 8):
            streamed = streaming_model(model, groups)
            peak = peak_live_bytes(streamed, x)
            rows.append([f"k = {groups}", f"{peak / 1e6:.2f}", f"{peak / plain:.2f}"])
    body = markdown_table(["forward", "peak live tensor MB (float32)", "ratio"], rows) + (
        f"\n\nMobileNetV2 1.0, batch 1, {resolution}x{resolution}: each inverted residual computed k groups of "
        "expanded channels at a time (`mobilenet.nn.streaming`), outputs equal to the plain block's."
    )
    return Section("Section 5: memory-efficient inference", REPRODUCED, body)


def figure6(settings: ReportSettings) -> Section:
    if settings.ablation is None:
        body = "Run `python benchmarks/figure6.py --out DIR` (about an hour on two cores), then `--ablation DIR`."
        return Section("Figure 6: the ablations", NOT_RUN, body)
    curves = read_ablation(settings.ablation)
    plot_ablation(curves, settings.out / "figure6.png")
    rows = [
        [
            r["label"],
            r["seeds"],
            r["epochs"],
            f"{r['top1_mean']:.2%} ± {r['top1_std']:.2%}",
            "" if r["gap_to_linear"] is None else f"{r['gap_to_linear'] * 100:+.2f}",
        ]
        for r in ablation_rows(curves)
    ]
    body = "![Figure 6](figure6.png)\n\n" + markdown_table(
        ["variant", "seeds", "epochs", "final validation top-1", "points vs the paper's design"], rows
    )
    findings = compare_to_paper(ablation_rows(curves))
    body += "\n\n" + "\n".join(f"- {finding}" for finding in findings)
    agree = all("as in the paper, beyond" in finding for finding in findings) and len(findings) == len(PAPER_ORDER)
    body += "\n\nOn CIFAR-10 at a CPU budget (`benchmarks/figure6.py`), not ImageNet."
    return Section("Figure 6: the ablations", REPRODUCED if agree else PARTLY, body)


TABLES = (table2, table3, table4)  # then the kinds' tables
FIGURES = (figure1, figure5, section5, figure6)


def write_report(settings: ReportSettings) -> tuple[Path, list[Section]]:
    """Every section, written as ``report.md`` (with its PNGs) into ``settings.out``."""
    settings.out.mkdir(parents=True, exist_ok=True)
    sections = [build(settings) for build in TABLES] + kind_tables(settings) + [build(settings) for build in FIGURES]
    summary = markdown_table(["", "verdict"], [[s.title, s.verdict] for s in sections])
    text = (
        "# MobileNetV2 (Sandler et al. 2018) as this library reproduces it\n\n"
        f"Generated {time.strftime('%Y-%m-%d %H:%M')}{' (--quick)' if settings.quick else ''}.\n\n{summary}\n\n"
        + "\n\n".join(f"## {s.title}\n\n*{s.verdict}*\n\n{s.body}" for s in sections)
        + "\n"
    )
    path = settings.out / "report.md"
    atomic_text(path, text)
    return path, sections
