"""``mobilenet profile``, ``list`` and ``convert``: the architectures and their weights files."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING

from mobilenet.cli.values import crop_fraction, positive_float, positive_int
from mobilenet.detection.config import DETECTION_MODELS
from mobilenet.nn.preprocessing import INTERPOLATIONS
from mobilenet.nn.variants import MODELS
from mobilenet.segmentation.config import SEGMENTATION_MODELS

if TYPE_CHECKING:
    from mobilenet.complexity.profile import GridCell, Profile

NAMES = sorted(MODELS)
PREPROCESSING_FLAGS = ("input_size", "crop_pct", "interpolation", "mean", "std")


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


def _print_table7(as_json: bool, single_scale: bool) -> int:
    from mobilenet.segmentation.table7 import table7

    rows = table7(multi_scale=not single_scale)
    if as_json:
        print(json.dumps([{"row": row.label, **asdict(row)} for row in rows]))
        return 0
    print("Table 7: Mobile DeepLabv3 at 513x513, 21 classes (MF: 6 scales x flip, every pass counted)")
    print(f"{'row':<24} {'params (paper)':>16} {'MAdds (paper)':>20} {'paper mIoU':>11}")
    for row in rows:
        params, madds = f"{row.params_m:.2f}M ({row.paper_params_m:g}M)", f"{row.madds_b:.2f}B ({row.paper_madds_b:g}B)"
        print(f"{row.label:<24} {params:>16} {madds:>20} {row.paper_miou:>10.2f}%")
    return 0


def _print_tables5_6(as_json: bool) -> int:
    from mobilenet.detection.tables import detection_tables

    rows = detection_tables()
    if as_json:
        print(json.dumps([asdict(row) for row in rows]))
        return 0
    print("Tables 5 and 6: SSD / SSDLite at 320x320, 80 classes (Table 5: the head alone)")
    print(f"{'row':<20} {'params (paper)':>16} {'MAdds (paper)':>18} {'paper mAP':>10}")
    for row in rows:
        params, madds = f"{row.params_m:.2f}M ({row.paper_params_m:g}M)", f"{row.madds_b:.3f}B ({row.paper_madds_b:g}B)"
        paper_map = "" if row.paper_map is None else f"{row.paper_map:.1f}"
        print(f"{row.label:<20} {params:>16} {madds:>18} {paper_map:>10}")
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    from mobilenet.complexity.profile import profile, published_grid

    if args.grid:
        grids = {arch: published_grid(arch) for arch in ("mobilenet_v2", "mobilenet_v1")}
        if args.json:  # one list of cells; each names its arch in "published"
            cells = [cell for grid in grids.values() for cell in grid]
            print(json.dumps([{**asdict(cell), "madds_error": cell.madds_error} for cell in cells]))
        else:
            for arch, grid in grids.items():
                _print_grid(arch, grid)
        return 0 if all(cell.ok for grid in grids.values() for cell in grid) else 1
    if args.table7:
        return _print_table7(args.json, args.quick)
    if args.tables5_6:
        return _print_tables5_6(args.json)
    base = MODELS[args.name]
    width = base.width_mult if args.width is None else args.width
    if args.memory:
        return _print_memory(args.name, width, args.resolution, args.json)
    result = profile(base.arch, width, args.resolution)
    if args.json:
        print(json.dumps(asdict(result)))
    else:
        _print_profile(result)
    if args.plot:
        from mobilenet.tools.plots import plot_profile

        plot_profile(result, args.plot)
        print(f"plot written to {args.plot}", file=sys.stderr if args.json else sys.stdout)  # stdout: the JSON only
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from fnmatch import fnmatch

    registered = {**MODELS, **SEGMENTATION_MODELS, **DETECTION_MODELS}
    names = sorted(name for name in registered if fnmatch(name, args.pattern))
    if args.json:
        print(json.dumps([{"name": name, **asdict(registered[name])} for name in names]))
        return 0
    for name in names:
        config = registered[name]
        print(f"{name:<28} {config.arch} width {config.width_mult:g}")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from mobilenet.registry import create_model
    from mobilenet.weights.format import save_weights
    from mobilenet.weights.load import load_model

    model = create_model(args.model, weights=args.source) if args.model else load_model(args.source)
    given = {name: getattr(args, name) for name in PREPROCESSING_FLAGS if getattr(args, name) is not None}
    given |= {name: tuple(given[name]) for name in ("mean", "std") if name in given}
    if given:  # what the weights expect, where the file does not say it right (timm's crop 0.95, say)
        model.preprocessing = replace(model.preprocessing, **given)
    save_weights(model, args.output)
    if args.json:
        print(json.dumps({"source": str(args.source), "output": str(args.output), **asdict(model.config)}))
        return 0
    print(
        f"{args.source} -> {args.output}: {model.config.arch} width {model.config.width_mult:g}, "
        f"{model.config.num_classes} classes, input {model.config.input_size}"
    )
    return 0


def add_parsers(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("profile", help="parameters and multiply-adds per layer, as in the paper's Table 2")
    p.add_argument("name", nargs="?", default="mobilenet_v2_100", choices=NAMES, metavar="NAME",
                   help="a registered model name")  # fmt: skip
    p.add_argument("--width", type=positive_float, help="width multiplier alpha (default: the name's)")
    p.add_argument("--resolution", type=positive_int, default=224, help="input resolution")
    p.add_argument("--grid", action="store_true", help="every TF-slim published cell beside our counts")
    p.add_argument("--memory", action="store_true", help="the largest tensor at each resolution (Table 3)")
    p.add_argument("--table7", action="store_true", help="Mobile DeepLabv3's parameters and MAdds beside Table 7's")
    p.add_argument("--tables5-6", action="store_true", help="SSD and SSDLite's parameters and MAdds beside Tables 5-6")
    p.add_argument("--quick", action="store_true", help="--table7 without the multi-scale rows (seconds, not a minute)")
    p.add_argument(
        "--json", action="store_true", help="print the per-layer profile (or --grid, --memory, a table) as JSON"
    )
    p.add_argument("--plot", type=Path, help="also write a PNG of MAdds and parameters per layer")
    p.set_defaults(func=cmd_profile)

    p = commands.add_parser("convert", help="save any supported weights as safetensors with metadata")
    p.add_argument("source", help="safetensors, .pth (torchvision/timm) or .tflite file")
    p.add_argument("output", type=Path, help="the .safetensors file to write")
    p.add_argument("--model", choices=NAMES, help="architecture of a bare state dict (default: the file's metadata)")
    p.add_argument("--input-size", type=positive_int, help="preprocessing: the square input (default: the file's)")
    p.add_argument("--crop-pct", type=crop_fraction, help="preprocessing: resize to size / crop-pct, then center-crop")
    p.add_argument("--interpolation", choices=INTERPOLATIONS, help="preprocessing: the resize filter")
    p.add_argument("--mean", type=float, nargs=3, metavar="X", help="preprocessing: per-channel mean of [0, 1] pixels")
    p.add_argument("--std", type=positive_float, nargs=3, metavar="X", help="preprocessing: per-channel std")
    p.add_argument("--json", action="store_true", help="print source, output and the model's config as JSON")
    p.set_defaults(func=cmd_convert)

    p = commands.add_parser("list", help="registered model names")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style pattern the names must match")
    p.add_argument("--json", action="store_true", help="a JSON list: each name with its model config")
    p.set_defaults(func=cmd_list)
