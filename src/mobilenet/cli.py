"""The ``mobilenet`` command: parses arguments, calls the library, prints what it returns."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import typing
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from mobilenet.complexity import Profile, paper_table, profile, published_grid
from mobilenet.registry import MODELS, create_model, list_models

if TYPE_CHECKING:
    from mobilenet.recipes import TrainConfig


def _shape(hwc: tuple[int, int, int]) -> str:
    return f"{hwc[0]}x{hwc[1]}x{hwc[2]}" if hwc[0] == hwc[1] else f"{hwc[0]}x{hwc[1]} x{hwc[2]}"


def _print_profile(result: Profile) -> None:
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


def _print_grid(arch: str) -> int:
    grid = published_grid(arch)
    print(f"{arch}: our counts beside the TF-slim checkpoint table")
    print(f"{'alpha':>5} {'res':>4} {'MAdds pub':>9} {'ours':>8} {'diff':>7} {'params pub':>10} {'ours':>6}  verdict")
    for cell in grid:
        p = cell.published
        print(
            f"{p.width_mult:>5g} {p.resolution:>4} {p.macs_m:>8.0f}M {cell.madds / 1e6:>7.1f}M "
            f"{cell.madds_error:>+7.1%} {p.params_m:>9.2f}M {cell.params_without_norm / 1e6:>5.2f}M  {cell.verdict}"
        )
    return 0 if all(cell.ok for cell in grid) else 1


def cmd_profile(args: argparse.Namespace) -> int:
    if args.grid:
        return max(_print_grid(arch) for arch in ("mobilenet_v2", "mobilenet_v1"))
    base = MODELS[args.name]
    width = base.width_mult if args.width is None else args.width
    result = profile(base.arch, width, args.resolution)
    if args.json:
        print(json.dumps(asdict(result)))
    else:
        _print_profile(result)
    if args.plot:
        from mobilenet.plots import plot_profile

        plot_profile(result, args.plot)
        print(f"plot written to {args.plot}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from mobilenet.deploy import deploy, load_deployed
    from mobilenet.predict import classify

    if args.model:
        model = create_model(args.model, weights=args.weights)
        runner = deploy(model, args.backend, args.precision or "fp32", args.calibration)
    else:
        runner = load_deployed(args.weights, args.backend, args.precision, args.calibration)
    results = classify(runner, args.images, top=args.top)
    for result in results:
        if args.json:
            print(json.dumps(result))
        elif "error" in result:
            print(f"{result['image']}: {result['error']}", file=sys.stderr)
        else:
            print(result["image"])
            for entry in result["top"]:
                print(f"  {entry['prob']:6.1%}  {entry['index']:>5}  {entry['name']}")
    return 1 if any("error" in r for r in results) else 0


def _load_any(weights: str):
    from mobilenet.weights import load_model

    return load_model(weights)


def cmd_convert(args: argparse.Namespace) -> int:
    from mobilenet.weights import save_weights

    model = create_model(args.model, weights=args.source) if args.model else _load_any(args.source)
    save_weights(model, args.output)
    print(
        f"{args.source} -> {args.output}: {model.config.arch} width {model.config.width_mult:g}, "
        f"{model.config.num_classes} classes, input {model.config.input_size}"
    )
    return 0


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The recipe named by ``--recipe`` with each flag given on the command line (and only those) applied."""
    from mobilenet.recipes import make_config

    return make_config(args.recipe, **{name: getattr(args, name) for name in _train_fields() if hasattr(args, name)})


def cmd_train(args: argparse.Namespace) -> int:
    from mobilenet.qat import INT8_IR
    from mobilenet.train import train

    result = train(train_config(args), resume=args.resume)
    if result.val is not None and int(os.environ.get("RANK", "0")) == 0:
        print(
            f"{result.run_dir}: {result.epochs} epochs in {result.wall_seconds:.0f} s, "
            f"validation top-1 {result.val.top1:.1%} top-5 {result.val.top5:.1%} (best {result.best_top1:.1%}) "
            f"on {result.val.n} images; {result.train_images_per_s:.0f} training images/s; "
            f"unreadable images skipped: {result.skipped_images}"
        )
        if result.int8 is not None:
            print(f"int8 (OpenVINO IR {result.run_dir / INT8_IR}): validation top-1 {result.int8.top1:.1%}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from mobilenet.evaluate import evaluate_folder

    result = evaluate_folder(
        args.weights,
        args.data,
        class_index=args.class_index,
        batch_size=args.batch_size,
        workers=args.workers,
        progress=not args.json,
        backend=args.backend,
        precision=args.precision,
        calibration=args.calibration,
    )
    if args.plot:
        from mobilenet.plots import plot_confusion

        plot_confusion(result.confusion, result.classes, args.plot)
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0
    print(
        f"{args.data}: top-1 {result.top1:.2%}, top-5 {result.top5:.2%} on {result.n} images "
        f"({result.images_per_s:.0f} images/s, {result.skipped} unreadable skipped)"
    )
    for name, accuracy in zip(result.classes, result.per_class, strict=True):
        print(f"  {accuracy:7.1%}  {name}")
    if args.plot:
        print(f"confusion matrix written to {args.plot}")
    return 0


def _train_fields() -> dict[str, type]:
    from mobilenet.recipes import TrainConfig

    hints = typing.get_type_hints(TrainConfig)
    return {f.name: hints[f.name] for f in dataclasses.fields(TrainConfig) if f.name != "recipe"}


def _parse_value(kind: type):
    """An argparse type for a config field: bools as true/false, optionals accept 'none'."""
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    base = args[0] if args and typing.get_origin(kind) is not typing.Literal else kind
    if typing.get_origin(base) is typing.Literal:
        base = type(typing.get_args(base)[0])

    def parse(text: str):
        if text.lower() == "none" and type(None) in typing.get_args(kind):
            return None
        if base is bool:
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
            return text.lower() in ("true", "1", "yes")
        return base(text)

    return parse


def cmd_export(args: argparse.Namespace) -> int:
    from mobilenet import export

    model = create_model(args.model, weights=args.weights) if args.model else _load_any(args.weights)
    write = {"onnx": export.export_onnx, "torchscript": export.export_torchscript, "tflite": export.export_tflite}
    report = write[args.format](model.eval(), args.output, inputs=args.images)
    print(f"{report.path}: {report.format}, {report.file_size / 1e6:.1f} MB; outputs differ from PyTorch by at most "
          f"{report.max_abs_diff:.2g} on {report.verified_on}")  # fmt: skip
    return 0


def _given(args: argparse.Namespace, *names: str) -> dict:
    """The named flags as keyword arguments of the library function they are passed to."""
    return {name: getattr(args, name) for name in names}


def cmd_bench(args: argparse.Namespace) -> int:
    from mobilenet.bench import bench

    options = _given(args, "threads", "batch", "rounds", "calls", "reference", "compile", "precisions", "calibration")
    results = bench(
        args.arch, args.widths, args.resolutions, args.weights, memory=args.memory, progress=not args.json, **options
    )
    if args.json:
        print(json.dumps([r.to_dict() for r in results]))
    for r in results if not args.json else ():
        floor = f"floor {r.floor_b1_ms:.2f} ms, {r.floor_throughput:.0f} img/s"
        print(f"\n{r.arch} {r.width_mult:g}@{r.resolution}, {r.threads} threads, {r.madds / 1e6:.1f}M MAdds; "
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
        from mobilenet.plots import plot_bench

        plot_bench(results, args.plot)
        print(f"plot written to {args.plot}", file=sys.stderr if args.json else sys.stdout)
    return 0


def cmd_pick(args: argparse.Namespace) -> int:
    from mobilenet.pick import pick

    options = _given(args, "threads", "widths", "resolutions", "backend", "precision", "rounds", "calls")
    result = pick(args.budget_ms, progress=not args.json, **options)
    if args.plot:
        from mobilenet.plots import plot_pick

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


def cmd_list(args: argparse.Namespace) -> int:
    for name in list_models(args.pattern):
        config = MODELS[name]
        print(f"{name:<20} {config.arch} width {config.width_mult:g}")
    return 0


def _inference_flags(p: argparse.ArgumentParser) -> None:
    from mobilenet.deploy import BACKENDS, PRECISIONS

    p.add_argument("--backend", default="auto", choices=["auto", *BACKENDS],
                   help="auto: the fastest installed; eager: the plain PyTorch model")  # fmt: skip
    p.add_argument("--precision", choices=sorted({x for v in PRECISIONS.values() for x in v}),
                   help="default: fp32; an OpenVINO IR (.xml) runs as it was saved")  # fmt: skip
    p.add_argument("--calibration", help="int8: a folder of images (or one image) to calibrate on")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mobilenet", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("profile", help="parameters and multiply-adds per layer, as in the paper's Table 2")
    p.add_argument("name", nargs="?", default="mobilenet_v2_100", choices=list_models(), metavar="NAME")
    p.add_argument("--width", type=float, help="width multiplier alpha (overrides the name's)")
    p.add_argument("--resolution", type=int, default=224, help="input resolution (default 224)")
    p.add_argument("--grid", action="store_true", help="every TF-slim published cell beside our counts")
    p.add_argument("--json", action="store_true", help="print the per-layer profile as JSON")
    p.add_argument("--plot", type=Path, help="also write a PNG of MAdds and parameters per layer")
    p.set_defaults(func=cmd_profile)

    p = commands.add_parser("predict", help="top-K classes of images")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--weights", required=True, help="safetensors, .pth (timm/torchvision), .tflite or OpenVINO .xml")
    p.add_argument("--model", choices=list_models(), help="architecture of a bare state dict")
    p.add_argument("--top", type=int, default=5)
    p.add_argument("--json", action="store_true", help="one JSON object per image")
    _inference_flags(p)
    p.set_defaults(func=cmd_predict)

    p = commands.add_parser("convert", help="save any supported weights as safetensors with metadata")
    p.add_argument("source", help="safetensors, .pth (torchvision/timm) or .tflite file")
    p.add_argument("output", type=Path, help="the .safetensors file to write")
    p.add_argument("--model", choices=list_models(), help="architecture of a bare state dict")
    p.set_defaults(func=cmd_convert)

    from mobilenet.recipes import RECIPES

    p = commands.add_parser("train", help="train or fine-tune (no --data: the embedded digits set, ~2 minutes)")
    p.add_argument("--recipe", default="modern", choices=list(RECIPES), help="named recipe to start from")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue this run exactly where it stopped")
    for name, kind in _train_fields().items():
        p.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            type=_parse_value(kind),
            default=argparse.SUPPRESS,  # absent flags keep the recipe's value; 'none' is a real override
            metavar="VALUE",
            help=f"override the recipe's {name}",
        )
    p.set_defaults(func=cmd_train)

    p = commands.add_parser("eval", help="top-1, top-5, per-class accuracy and confusion matrix on a folder")
    p.add_argument("--weights", required=True, help="any weights file mobilenet can load, or an OpenVINO .xml")
    p.add_argument("--data", required=True, type=Path, help="root/<class>/<image>; ImageNet synset folders work too")
    p.add_argument(
        "--class-index", type=Path, help="synset -> index JSON (imagenet_class_index.json) for synset folders"
    )
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--plot", type=Path, help="write the confusion matrix as a PNG")
    p.add_argument("--json", action="store_true", help="one JSON object with top1, top5, n, per_class, confusion")
    _inference_flags(p)
    p.set_defaults(func=cmd_eval)

    p = commands.add_parser("export", help="ONNX (dynamic batch, metadata) or TorchScript, checked against PyTorch")
    p.add_argument("weights", help="any weights file mobilenet can load")
    p.add_argument("output", type=Path)
    p.add_argument("--format", choices=["onnx", "torchscript", "tflite"], default="onnx")
    p.add_argument("--images", help="real images (a folder or file) to verify the export on; default: random inputs")
    p.add_argument("--model", choices=list_models(), help="architecture of a bare state dict")
    p.set_defaults(func=cmd_export)

    p = commands.add_parser("bench", help="speed of every inference path side by side, against a reference")
    p.add_argument("--arch", default="mobilenet_v2", choices=["mobilenet_v2", "mobilenet_v1"])
    p.add_argument("--widths", type=float, nargs="+", default=[1.0], metavar="ALPHA")
    p.add_argument("--resolutions", type=int, nargs="+", default=[224], metavar="PIXELS")
    p.add_argument("--weights", help="benchmark these weights (one width and resolution) instead of random ones")
    p.add_argument("--threads", type=int, default=2, help="threads for every path (default 2)")
    p.add_argument("--batch", type=int, default=32, help="batch size of the throughput figure (default 32)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument("--calls", type=int, default=20, help="batch-1 calls per path per round (default 20)")
    p.add_argument("--reference", default="auto", choices=["auto", "torchvision", "timm", "none"])
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16", "int8"], choices=["fp32", "bf16", "int8"])
    p.add_argument("--compile", action="store_true", help="also optimize(compile=True) (minutes to compile)")
    p.add_argument("--calibration", help="int8: images to calibrate on (default: random tensors, speed only)")
    p.add_argument("--memory", action="store_true", help="peak RSS of each path, each in a fresh process")
    p.add_argument("--json", action="store_true", help="print every figure as JSON")
    p.add_argument("--plot", type=Path, help="write a PNG of latency and throughput per path")
    p.set_defaults(func=cmd_bench)

    p = commands.add_parser("pick", help="the most accurate MobileNetV2 within a latency budget on this machine")
    p.add_argument("--budget-ms", type=float, required=True, help="batch-1 latency budget in milliseconds")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--widths", type=float, nargs="+", metavar="ALPHA", help="default: every published width")
    p.add_argument("--resolutions", type=int, nargs="+", metavar="PIXELS", help="default: every published one")
    p.add_argument("--backend", default="auto", help="what runs each model (default: the fastest installed)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "int8"])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--calls", type=int, default=20, help="batch-1 calls per cell per round")
    p.add_argument("--json", action="store_true")
    p.add_argument("--plot", type=Path, help="write accuracy against latency as a PNG (the paper's Figure 5)")
    p.set_defaults(func=cmd_pick)

    p = commands.add_parser("list", help="registered model names")
    p.add_argument("pattern", nargs="?", default="*")
    p.set_defaults(func=cmd_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, ImportError, RuntimeError) as error:
        print(f"mobilenet: error: {error}", file=sys.stderr)
        return 2
