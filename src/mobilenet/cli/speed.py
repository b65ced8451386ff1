"""``mobilenet export``, ``bench`` and ``pick``: shipping a model, and measuring every way to run it."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from mobilenet.cli.values import positive_float, positive_int
from mobilenet.detection.config import DETECTION_MODELS
from mobilenet.inference.backends import BACKENDS
from mobilenet.nn.variants import MODELS
from mobilenet.segmentation.config import SEGMENTATION_MODELS

BENCH_ARCHS = ["mobilenet_v2", "mobilenet_v1"]


def load_any(path: str) -> object:
    """The model a weights file holds, as the file says: a classifier (or backbone), a Mobile DeepLabv3 or an SSD."""
    from mobilenet.detection.load import is_detection_file, load_detector
    from mobilenet.segmentation.load import is_segmentation_file, load_deeplab
    from mobilenet.weights.load import load_model

    if is_detection_file(path):
        return load_detector(path)
    return load_deeplab(path) if is_segmentation_file(path) else load_model(path)


def cmd_export(args: argparse.Namespace) -> int:
    from mobilenet.inference import export
    from mobilenet.registry import create_model

    model = create_model(args.model, weights=args.weights) if args.model else load_any(args.weights)
    if args.argmax and args.format == "tflite":
        raise ValueError("--argmax writes class indices to ONNX or TorchScript: use --format onnx or torchscript")
    if args.precision == "int8":
        return export_int8(model.eval(), args)
    options = {"argmax": args.argmax} if args.argmax else {}
    write = {"onnx": export.export_onnx, "torchscript": export.export_torchscript, "tflite": export.export_tflite}
    report = write[args.format](model.eval(), args.output, inputs=args.images, **options)
    if args.json:
        print(json.dumps({**asdict(report), "path": str(report.path)}))
        return 0
    checks = []
    if report.max_abs_diff is not None:
        checks.append(f"outputs differ from PyTorch by at most {report.max_abs_diff:.2g}")
    if report.class_agreement is not None:
        checks.append(f"classes are PyTorch's on {report.class_agreement:.3%} of outputs")
    print(f"{report.path}: {report.format}, {report.file_size / 1e6:.1f} MB; {' and '.join(checks)} "
          f"on {report.verified_on}")  # fmt: skip
    return 0


def export_int8(model: object, args: argparse.Namespace) -> int:
    from mobilenet.inference.edge import export_tflite_int8

    if args.format != "tflite" or args.calibration is None:
        raise ValueError("--precision int8 writes a full-integer TFLite file: add --format tflite --calibration DIR")
    kind = getattr(model, "kind", "mobilenet")
    if kind != "mobilenet":  # edge.export_tflite_int8 checks top-1 agreement: a classifier's
        raise ValueError(f"--precision int8 exports classifiers, not a {kind} model: int8 runs through deploy "
                         "(precision='int8'), or use Google's own uint8 file")  # fmt: skip
    report = export_tflite_int8(model, args.output, args.calibration, check=args.images)
    if args.json:
        print(json.dumps({**asdict(report), "path": str(report.path)}))
        return 0
    print(f"{report.path}: full-integer TFLite, {report.file_size / 1e6:.1f} MB, input {report.input}; calibrated on "
          f"{report.calibrated_on} images; top-1 agrees with float on {report.top1_agreement:.1%} of "
          f"{report.checked_on} (LiteRT)")  # fmt: skip
    return 0


def _given(args: argparse.Namespace, *names: str) -> dict:
    """The named flags as keyword arguments of the library function they are passed to."""
    return {name: getattr(args, name) for name in names}


def cmd_bench(args: argparse.Namespace) -> int:
    from mobilenet.detection.load import is_detection_file
    from mobilenet.segmentation.load import is_segmentation_file
    from mobilenet.tools.bench import bench

    arch = args.arch
    if args.weights and arch in BENCH_ARCHS and is_segmentation_file(args.weights):
        arch = f"deeplabv3_{arch}"  # any segmentation name: the file's own config decides the model
    if args.weights and arch in BENCH_ARCHS and is_detection_file(args.weights):
        arch = f"ssdlite_{arch}"  # likewise any detector's name
    options = _given(args, "threads", "batch", "rounds", "calls", "reference", "compile", "precisions", "calibration")
    results = bench(
        arch, args.widths, args.resolutions, args.weights, memory=args.memory, progress=not args.json, **options
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


def cmd_pick(args: argparse.Namespace) -> int:
    from mobilenet.tools.pick import pick

    options = _given(args, "threads", "widths", "resolutions", "backend", "precision", "rounds", "calls")
    result = pick(args.budget_ms, progress=not args.json, **options)
    if args.plot:
        from mobilenet.tools.plots import plot_pick

        plot_pick(result, args.plot)
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0 if result.choice else 1
    print(f"MobileNetV2 batch-1 latency here ({result.backend} {result.precision}, {result.threads} threads) "
          "and published ImageNet top-1 (TF-slim):")  # fmt: skip
    for c in sorted(result.cells, key=lambda c: c.latency_ms):
        mark = "  <- pick" if c is result.choice else ""
        fits = "fits" if c.latency_ms <= result.budget_ms else "over"
        print(f"  width {c.width_mult:<4g} @{c.resolution:<4} {c.latency_ms:7.2f} ms (p90 {c.latency_p90_ms:.2f}) "
              f"{fits}  top-1 {c.top1:.1f}%  {c.madds_m:g}M MAdds{mark}")  # fmt: skip
    if args.plot:
        print(f"plot written to {args.plot}")
    if result.choice is None:
        fastest = min(result.cells, key=lambda c: c.latency_ms)
        print(f"nothing fits in {args.budget_ms:g} ms: the fastest is width {fastest.width_mult:g} "
              f"@{fastest.resolution} at {fastest.latency_ms:.2f} ms; raise the budget or add threads")  # fmt: skip
        return 1
    c = result.choice
    print(f"pick: mobilenet_v2 width {c.width_mult:g} @{c.resolution}: {c.top1:.1f}% top-1 in {c.latency_ms:.2f} ms "
          f"(create_model('mobilenet_v2_{round(c.width_mult * 100):03d}', input_size={c.resolution}))")  # fmt: skip
    return 0


def add_parsers(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("export", help="ONNX, TorchScript or TFLite (float or full-integer), checked before kept")
    p.add_argument("weights", help="any weights file mobilenet can load (a classifier, DeepLab or SSD detector)")
    p.add_argument("output", type=Path, help="the file to write")
    p.add_argument("--format", choices=["onnx", "torchscript", "tflite"], default="onnx", help="what to write")
    p.add_argument("--images", help="real images (a folder or file) to verify the export on; default: random inputs")
    p.add_argument("--precision", choices=["fp32", "int8"], default="fp32",
                   help="int8: a full-integer TFLite file (int8 NHWC in and out) for phones and Coral")  # fmt: skip
    p.add_argument("--calibration", help="images (a folder) to calibrate int8 on: real ones, a few hundred")
    p.add_argument("--model", choices=sorted(MODELS),
                   help="architecture of a bare state dict (default: the file's metadata)")  # fmt: skip
    p.add_argument("--argmax", action="store_true",
                   help="output class indices (argmax over classes; DeepLab: (N, H, W)) instead of logits")  # fmt: skip
    p.add_argument("--json", action="store_true",
                   help="print the report (path, format, file_size, max_abs_diff, ...) as JSON")  # fmt: skip
    p.set_defaults(func=cmd_export)

    p = commands.add_parser("bench", help="speed of every inference path side by side, against a reference")
    p.add_argument("--arch", default="mobilenet_v2",
                   choices=BENCH_ARCHS + sorted(SEGMENTATION_MODELS) + sorted(DETECTION_MODELS),
                   help="architecture (with --weights, the file decides: classifier, DeepLab or detector)")  # fmt: skip
    p.add_argument("--widths", type=positive_float, nargs="+", default=[1.0], metavar="ALPHA",
                   help="width multipliers to measure")  # fmt: skip
    p.add_argument("--resolutions", type=positive_int, nargs="+", metavar="PIXELS",
                   help="input resolutions to measure (default: the architecture's own: 224, SSDLite 320, DeepLab "
                        "513)")  # fmt: skip
    p.add_argument("--weights", help="benchmark these weights (one width and resolution) instead of random ones")
    p.add_argument("--threads", type=positive_int, default=2, help="threads for every path")
    p.add_argument("--batch", type=positive_int, default=32, help="batch size of the throughput figure")
    p.add_argument("--rounds", type=positive_int, default=3, help="interleaved rounds")
    p.add_argument("--calls", type=positive_int, default=20, help="batch-1 calls per path per round")
    p.add_argument("--reference", default="auto", choices=["auto", "torchvision", "timm", "litert", "none"],
                   help="what each path is measured against (auto: torchvision, timm or ours eager; litert: Google's "
                        "runtime on the --weights .tflite file)")  # fmt: skip
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16", "int8"], choices=["fp32", "bf16", "int8"],
                   help="precisions to measure, on every backend that runs them")  # fmt: skip
    p.add_argument("--compile", action="store_true", help="also optimize(compile=True) (minutes to compile)")
    p.add_argument("--calibration", help="int8: images to calibrate on (default: random tensors, speed only)")
    p.add_argument("--memory", action="store_true", help="peak RSS of each path, each in a fresh process")
    p.add_argument("--json", action="store_true", help="print every figure as JSON")
    p.add_argument("--plot", type=Path, help="write a PNG of latency and throughput per path")
    p.set_defaults(func=cmd_bench)

    p = commands.add_parser("pick", help="the most accurate MobileNetV2 within a latency budget on this machine")
    p.add_argument("--budget-ms", type=positive_float, required=True, help="batch-1 latency budget in milliseconds")
    p.add_argument("--threads", type=positive_int, default=2, help="threads for every model")
    p.add_argument("--widths", type=positive_float, nargs="+", metavar="ALPHA",
                   help="widths to time (default: every published one)")  # fmt: skip
    p.add_argument("--resolutions", type=positive_int, nargs="+", metavar="PIXELS",
                   help="resolutions to time (default: every published one)")  # fmt: skip
    p.add_argument("--backend", default="auto", choices=["auto", *BACKENDS],
                   help="what runs each model (default: auto, the fastest installed)")  # fmt: skip
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "int8"], help="precision of every model")
    p.add_argument("--rounds", type=positive_int, default=3, help="interleaved rounds")
    p.add_argument("--calls", type=positive_int, default=20, help="batch-1 calls per cell per round")
    p.add_argument("--json", action="store_true", help="print every cell and the pick as JSON")
    p.add_argument("--plot", type=Path, help="write accuracy against latency as a PNG (the paper's Figure 5)")
    p.set_defaults(func=cmd_pick)
