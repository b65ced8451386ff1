"""``mobilenet bench``: every way to run one model, timed side by side against a reference, in one process."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mobilenet.cli.output import add_plot, check_plot

HELP = "speed of every inference path side by side, against a reference"
DESCRIPTION = (
    "Time every way to run a model (ours eager, optimize, each deploy backend and precision installed) against a "
    "reference (torchvision, timm, or Google's runtime on the --weights .tflite), interleaved round by round, with "
    "each path's ratio to the reference and to this CPU's compute floor."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mobilenet.registry import list_models
    from mobilenet.utils.values import positive_float, positive_int

    parser.add_argument("--arch", default="mobilenet_v2", choices=list_models(), metavar="NAME",
                        help="the registered model to time (with --weights, the file decides)")  # fmt: skip
    parser.add_argument("--widths", type=positive_float, nargs="+", default=[1.0], metavar="ALPHA",
                        help="width multipliers to measure")  # fmt: skip
    parser.add_argument("--resolutions", type=positive_int, nargs="+", metavar="PIXELS",
                        help="input resolutions to measure (default: the model's own)")  # fmt: skip
    parser.add_argument("--weights", help="benchmark these weights (one width and resolution) instead of random ones")
    parser.add_argument("--threads", type=positive_int, default=2, help="threads for every path")
    parser.add_argument("--batch", type=positive_int, default=32, help="batch size of the throughput figure")
    parser.add_argument("--rounds", type=positive_int, default=3, help="interleaved rounds")
    parser.add_argument("--calls", type=positive_int, default=20, help="batch-1 calls per path per round")
    parser.add_argument("--reference", default="auto", choices=["auto", "torchvision", "timm", "litert", "none"],
                        help="what each path is measured against (auto: torchvision, timm or ours eager; litert: "
                        "Google's runtime on the --weights .tflite file)")  # fmt: skip
    parser.add_argument("--files", nargs="+", default=[], metavar="FILE",
                        help="files exported from the --weights model (.onnx, .xml, .pte, .tflite), each timed beside "
                        "the rest in its own runtime as it was saved (a .tflite in LiteRT)")  # fmt: skip
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16", "int8"], choices=["fp32", "bf16", "int8"],
                        help="precisions to measure, on every backend that runs them")  # fmt: skip
    parser.add_argument("--backends", nargs="+", choices=["torch", "onnxruntime", "openvino", "executorch"],
                        help="the deploy backends to time (default: every one installed; ExecuTorch's lowering takes "
                        "the longest)")  # fmt: skip
    parser.add_argument("--compile", action="store_true", help="also optimize(compile=True) (minutes to compile)")
    parser.add_argument("--calibration", help="int8: images to calibrate on (default: random tensors, speed only)")
    parser.add_argument("--memory", action="store_true", help="peak RSS of each path, each in a fresh process")
    parser.add_argument("--json", action="store_true", help="print every figure as JSON")
    add_plot(parser, "write a PNG of latency and throughput per path")


def _given(args: argparse.Namespace, *names: str) -> dict:
    """The named flags as keyword arguments of the library function they are passed to."""
    return {name: getattr(args, name) for name in names}


def run(args: argparse.Namespace) -> int:
    from mobilenet.tools.bench import bench

    check_plot(args, [args.weights, args.calibration, *args.files])
    missing = next((path for path in args.files if not Path(path).is_file()), None)
    if missing is not None:
        raise FileNotFoundError(f"no such file to time: {missing}")
    options = _given(args, "threads", "batch", "rounds", "calls", "reference", "compile", "precisions", "calibration",
                     "backends")  # fmt: skip
    options["graphs"] = args.files
    results = bench(
        args.arch, args.widths, args.resolutions, args.weights, memory=args.memory, progress=not args.json, **options
    )
    if args.json:
        print(json.dumps([r.to_dict() for r in results]))
    for r in results if not args.json else ():
        floor = f"floor {r.floor_b1_ms:.2f} ms, {r.floor_throughput:.0f} img/s"
        model = f"{r.kind} {r.arch}" if r.kind != "mobilenet" else r.arch
        print(f"\n{model} {r.width_mult:g}@{r.resolution}, {r.threads} threads, {r.madds / 1e6:.1f}M MAdds; "
              f"fp32 GEMM {r.gemm_gflops:.0f} GFLOP/s: {floor}")  # fmt: skip
        for note in r.notes:
            print(f"note: {note}")
        memory = r.baseline_memory_mb is not None
        print(f"| path | b1 ms (p90) | vs ref | x floor | b{r.batch} img/s | vs ref | x floor | size MB |"
              + (" peak RSS MB |" if memory else "") + "\n" + "|---" * (8 + memory) + "|")  # fmt: skip
        for p in r.paths:
            peak = (f" {p.peak_memory_mb:.0f} |" if p.peak_memory_mb else " - |") if memory else ""
            ratios = f"{p.throughput_speedup:.2f}x | {p.throughput_floor_ratio:.2f}"
            print(f"| {p.name} | {p.b1_ms:.2f} ({p.b1_p90_ms:.2f}) | {p.b1_speedup:.2f}x | {p.b1_floor_ratio:.2f} | "
                  f"{p.throughput:.0f} | {ratios} | {p.size_mb:.1f} |{peak}")  # fmt: skip
        if memory:
            print(
                f"peak RSS: each path alone in a fresh process, while it runs (its build excluded); "
                f"the process with only the model built: {r.baseline_memory_mb:.0f} MB"
            )
    if args.plot:
        from mobilenet.tools.plots import plot_bench

        plot_bench(results, args.plot)
        print(f"plot written to {args.plot}", file=sys.stderr if args.json else sys.stdout)
    return 0
