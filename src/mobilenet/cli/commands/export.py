"""``mobilenet export``: a model of any kind as ONNX, TorchScript, TFLite (float, or full-integer with uint8 pixels in)
or an ExecuTorch program (fp32 or int8), each file checked against PyTorch before it is kept."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from mobilenet.cli.output import add_force, check_output

HELP = "ONNX, TorchScript, TFLite or ExecuTorch (float or int8), checked before kept"
DESCRIPTION = (
    "Write a model as ONNX, TorchScript, TFLite or an ExecuTorch program, with BatchNorm folded and its metadata in "
    "the file; the file runs on real images (--images) or random inputs and is kept only if its outputs are "
    "PyTorch's (int8: its agreement with the float model is reported)."
)


# Each format's file names, the usual one first.
SUFFIXES = {"onnx": (".onnx",), "torchscript": (".pt", ".pth"), "tflite": (".tflite",), "executorch": (".pte",)}


def output_format(output: Path) -> str:
    """The format an output's extension names, or a one-line refusal."""
    found = next((name for name, suffixes in SUFFIXES.items() if output.suffix.lower() in suffixes), None)
    if found is None:
        raise ValueError(f"{output}: name the file .onnx, .pt, .tflite or .pte, or say which format with --format")
    return found


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mobilenet.registry import list_models

    parser.add_argument("weights", help="any weights file mobilenet reads, of any kind, or a published weights name")
    parser.add_argument("output", type=Path, help="the file to write: .onnx, .pt (TorchScript), .tflite or .pte "
                        "(ExecuTorch)")  # fmt: skip
    parser.add_argument("--format", choices=list(SUFFIXES), help="what to write (default: as OUTPUT is named)")
    parser.add_argument("--images", help="real images (a folder or file) to verify the export on (default: random "
                        "inputs)")  # fmt: skip
    parser.add_argument("--precision", choices=["fp32", "int8"], default="fp32",
                        help="int8: a full-integer TFLite file (uint8 NHWC pixels in) for phones, Coral and "
                        "MediaPipe, or an int8 ExecuTorch program (XNNPACK)")  # fmt: skip
    parser.add_argument("--calibration", help="images (a folder) to calibrate int8 on: real ones, a few hundred")
    parser.add_argument("--model", choices=list_models(), metavar="NAME",
                        help="the model of a bare state dict (default: the file's own)")  # fmt: skip
    parser.add_argument("--argmax", action="store_true",
                        help="output class indices (argmax over classes; a segmenter's: (N, H, W)) instead of "
                        "logits")  # fmt: skip
    parser.add_argument("--json", action="store_true",
                        help="print the report (path, format, file_size, max_abs_diff, ...) as JSON")  # fmt: skip
    add_force(parser)


def run(args: argparse.Namespace) -> int:
    from mobilenet.inference import export
    from mobilenet.registry import create_model, load

    args.format = args.format or output_format(args.output)
    check_output(args, args.output, SUFFIXES[args.format], f"a {args.format} file",
                 [args.weights, args.images, args.calibration])  # fmt: skip
    model = create_model(args.model, weights=args.weights) if args.model else load(args.weights)
    if args.argmax and args.format in ("tflite", "executorch"):
        raise ValueError("--argmax writes class indices to ONNX or TorchScript: use --format onnx or torchscript")
    if args.format == "executorch":
        return export_program(model.eval(), args)
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


def export_program(model: object, args: argparse.Namespace) -> int:
    from mobilenet.inference.pte import export_executorch

    if args.precision == "int8" and args.calibration is None:
        raise ValueError("--precision int8 calibrates on real images: add --calibration DIR (a few hundred)")
    report = export_executorch(model, args.output, args.images, args.precision, args.calibration)
    if args.json:
        print(json.dumps({**asdict(report), "path": str(report.path)}))
        return 0
    if report.precision == "fp32":
        check = f"outputs differ from PyTorch by at most {report.max_abs_diff:.2g}"
    else:
        check = f"calibrated on {report.calibrated_on} images; classes are the float model's on "
        check += f"{report.class_agreement:.1%} of outputs"
    print(f"{report.path}: ExecuTorch {report.precision} (XNNPACK), {report.file_size / 1e6:.1f} MB; {check} on "
          f"{report.verified_on}")  # fmt: skip
    return 0


def export_int8(model: object, args: argparse.Namespace) -> int:
    from mobilenet.inference.edge import export_tflite_int8

    if args.format != "tflite" or args.calibration is None:
        raise ValueError(
            "--precision int8 writes a full-integer TFLite file or an ExecuTorch program: add --format tflite (or "
            "executorch) --calibration DIR"
        )
    report = export_tflite_int8(model, args.output, args.calibration, check=args.images)
    if args.json:
        print(json.dumps({**asdict(report), "path": str(report.path)}))
        return 0
    what = {"top-1": "top-1 agrees", "pixels": "pixels' classes agree", "anchors": "anchors' top classes agree"}
    print(f"{report.path}: full-integer TFLite, {report.file_size / 1e6:.1f} MB, input {report.input}; calibrated on "
          f"{report.calibrated_on} images; {what[report.measured]} with float on {report.agreement:.1%} "
          f"(LiteRT, {report.checked_on} images)")  # fmt: skip
    return 0
