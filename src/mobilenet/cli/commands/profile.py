"""``mobilenet profile``: parameters and multiply-adds per layer as the paper's Table 2 counts them, every published
cell beside TF-slim's table, the largest tensors (Table 3), and the tables of the paper that the kinds of model
recompute (Table 7, Tables 5-6)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import TYPE_CHECKING

from mobilenet.cli.output import add_plot, check_plot

if TYPE_CHECKING:
    from mobilenet.complexity.profile import GridCell, Profile

HELP = "parameters and multiply-adds per layer, as in the paper's Table 2, and the paper's other tables"
DESCRIPTION = (
    "A classifier's parameters and multiply-adds per layer, as the paper's Table 2 lays them out; --grid compares "
    "every published width and resolution with TF-slim's table, --memory the largest tensors with Table 3, and "
    "the table flags count the paper's other tables on the other kinds of model."
)


def _shape(hwc: tuple[int, int, int]) -> str:
    return f"{hwc[0]}x{hwc[1]}x{hwc[2]}" if hwc[0] == hwc[1] else f"{hwc[0]}x{hwc[1]} x{hwc[2]}"


def _print_profile(result: Profile) -> None:
    from mobilenet.complexity.profile import paper_table

    print(f"{result.model} width {result.width_mult:g} at {result.resolution}x{result.resolution}")
    header = f"{'Input':>14}  {'Operator':<13}{'t':>3}{'c':>6}{'n':>3}{'s':>3}{'Params':>11}{'MAdds':>13}"
    print(header)
    print("-" * len(header))
    for row in paper_table(result):
        t = "-" if row.t is None else f"{row.t:g}"
        print(
            f"{_shape(row.input_shape):>14}  {row.operator:<13}{t:>3}{row.c:>6}{row.n:>3}{row.s:>3}"
            f"{row.params:>11,}{row.madds:>13,}"
        )
    print("-" * len(header))
    print(f"parameters {result.params:,} ({result.params_without_norm:,} without BatchNorm)")
    print(f"multiply-adds {result.madds:,} ({result.madds / 1e6:.1f}M)")


def _print_grid(arch: str, grid: list[GridCell]) -> None:
    print(f"{arch}: our counts beside the TF-slim checkpoint table")
    print(f"{'alpha':>5} {'res':>4} {'MAdds pub':>9} {'ours':>8} {'diff':>7} {'params pub':>10} {'ours':>6}  verdict")
    for cell in grid:
        p = cell.published
        print(
            f"{p.width_mult:>5g} {p.resolution:>4} {p.macs_m:>8.0f}M {cell.madds / 1e6:>7.1f}M "
            f"{cell.madds_error:>+7.1%} {p.params_m:>9.2f}M {cell.params_without_norm / 1e6:>5.2f}M  {cell.verdict}"
        )


def _print_memory(name: str, width: float, resolution: int, as_json: bool) -> int:
    from mobilenet.complexity.memory import PAPER_MAX_KB, memory_table
    from mobilenet.registry import create_model

    model = create_model(name, width_mult=width)
    streamed, plain = memory_table(model, resolution), memory_table(model, resolution, streamed=False)
    if as_json:
        print(json.dumps({"streamed": [asdict(row) for row in streamed], "unstreamed": [asdict(row) for row in plain]}))
        return 0
    arch = model.config.arch
    print(f"{arch} width {width:g} at {resolution}x{resolution}: the largest tensor that must exist at each size")
    print("(16-bit floats, K = 1,000 bytes; Sandler et al. 2018, Table 3 and Section 5)")
    print(f"{'size':>9}  {'ours':>18}  {'paper':>14}  {'without streaming':>20}")
    for row, unstreamed in zip(streamed, plain, strict=True):
        ours = f"{row.largest.channels} ch {row.largest.kilobytes:7.1f}K"
        paper = "" if row.paper_channels is None else f"{row.paper_channels} ch {row.paper_kilobytes:g}K"
        other = f"{unstreamed.largest.channels} ch {unstreamed.largest.kilobytes:7.1f}K"
        print(f"{row.size:>4}x{row.size:<4}  {ours:>18}  {paper:>14}  {other:>20}")
    largest = max(row.largest.kilobytes for row in streamed)
    paper_max = f"{PAPER_MAX_KB[arch]}K" if streamed[0].paper_kilobytes is not None else ""
    print(f"{'max':>9}  {largest:>17.1f}K  {paper_max:>14}  {max(r.largest.kilobytes for r in plain):>19.1f}K")
    if arch == "mobilenet_v1":
        print("V1's blocks expand nothing, so there is nothing to stream: every layer's output exists whole.")
    return 0


def table_flags() -> dict[str, str]:
    """The paper's tables the registered kinds recompute: flag -> reference to the table's function."""
    from mobilenet.registry import kinds

    return {flag: ref for kind in kinds() for flag, ref in kind.tables.items()}


def table_title(flag: str) -> str:
    """``table7`` -> ``Table 7``, ``tables5-6`` -> ``Tables 5-6``."""
    return flag.replace("tables", "Tables ").replace("table", "Table ")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mobilenet.nn.variants import MODELS
    from mobilenet.utils.values import positive_float, positive_int

    parser.add_argument("name", nargs="?", default="mobilenet_v2_100", choices=sorted(MODELS), metavar="NAME",
                        help="a registered classifier's name")  # fmt: skip
    parser.add_argument("--width", type=positive_float, help="width multiplier alpha (default: the name's)")
    parser.add_argument("--resolution", type=positive_int, default=224, help="input resolution")
    parser.add_argument("--grid", action="store_true", help="every TF-slim published cell beside our counts")
    parser.add_argument("--memory", action="store_true", help="the largest tensor at each resolution (Table 3)")
    for flag in table_flags():
        parser.add_argument(f"--{flag}", action="store_true", dest=flag.replace("-", "_"),
                            help=f"the paper's {table_title(flag)}: parameters and MAdds beside ours")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="a table without its slow rows (seconds, not a minute)")
    parser.add_argument(
        "--json", action="store_true", help="print the per-layer profile (or --grid, --memory, a table) as JSON"
    )
    add_plot(parser, "also write a PNG of MAdds and parameters per layer")


def print_table(ref: str, quick: bool, as_json: bool) -> int:
    from mobilenet.kinds import resolve

    table = resolve(ref)(quick)
    print(table.to_json() if as_json else table.text())
    return 0


def run(args: argparse.Namespace) -> int:
    from mobilenet.complexity.profile import profile, published_grid

    check_plot(args)
    if args.grid:
        grids = {arch: published_grid(arch) for arch in ("mobilenet_v2", "mobilenet_v1")}
        if args.json:  # one list of cells; each names its arch in "published"
            cells = [cell for grid in grids.values() for cell in grid]
            print(json.dumps([{**asdict(cell), "madds_error": cell.madds_error} for cell in cells]))
        else:
            for arch, grid in grids.items():
                _print_grid(arch, grid)
        return 0 if all(cell.ok for grid in grids.values() for cell in grid) else 1
    for flag, ref in table_flags().items():
        if getattr(args, flag.replace("-", "_")):
            return print_table(ref, args.quick, args.json)
    from mobilenet.nn.variants import MODELS

    base = MODELS[args.name]
    width = base.width_mult if args.width is None else args.width
    if args.memory:
        return _print_memory(args.name, width, args.resolution, args.json)
    variant = {name: getattr(base, name) for name in ("depth_mult", "fixed_stem_head", "head_conv")}
    result = profile(base.arch, width, args.resolution, **variant)
    if args.json:
        print(json.dumps(asdict(result)))
    else:
        _print_profile(result)
    if args.plot:
        from mobilenet.tools.plots import plot_profile

        plot_profile(result, args.plot)
        print(f"plot written to {args.plot}", file=sys.stderr if args.json else sys.stdout)  # stdout: the JSON only
    return 0
