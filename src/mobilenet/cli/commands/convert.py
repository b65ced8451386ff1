"""``mobilenet convert``: any weights file the library reads, of any kind, saved as our safetensors with its metadata
(and the preprocessing set where the file does not say it right)."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, replace
from pathlib import Path

from mobilenet.cli.output import add_force, check_output

HELP = "save any supported weights as safetensors with metadata"
DESCRIPTION = (
    "Save any weights file mobilenet reads (a torchvision or timm state dict, a TFLite file, a frozen graph, our "
    "safetensors), of any kind, as our safetensors: the model's kind, config, class names and preprocessing in its "
    "metadata. The preprocessing flags set what the weights expect where the file does not say it right."
)
PREPROCESSING_FLAGS = ("input_size", "crop_pct", "interpolation", "resize", "mean", "std")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mobilenet.nn.preprocessing import INTERPOLATIONS, RESIZES
    from mobilenet.registry import list_models
    from mobilenet.utils.values import crop_fraction, positive_float, positive_int

    parser.add_argument("source", help="any weights file mobilenet reads, or a published weights name")
    parser.add_argument("output", type=Path, help="the .safetensors file to write")
    parser.add_argument("--model", choices=list_models(), metavar="NAME",
                        help="the model of a bare state dict (default: the file's own)")  # fmt: skip
    parser.add_argument("--input-size", type=positive_int, help="preprocessing: the square input (default: the file's)")
    parser.add_argument(
        "--crop-pct",
        type=crop_fraction,
        help="preprocessing: the central share kept (short side to size / crop-pct, then crop)",
    )
    parser.add_argument("--interpolation", choices=INTERPOLATIONS, help="preprocessing: the resize filter")
    parser.add_argument("--resize", choices=RESIZES,
                        help="preprocessing: short side then center crop, or TF-slim's central crop-pct squashed "
                             "to the input (central_fraction)")  # fmt: skip
    parser.add_argument("--mean", type=float, nargs=3, metavar="X",
                        help="preprocessing: per-channel mean of [0, 1] pixels")  # fmt: skip
    parser.add_argument("--std", type=positive_float, nargs=3, metavar="X", help="preprocessing: per-channel std")
    parser.add_argument("--json", action="store_true", help="print source, output and the model's config as JSON")
    add_force(parser)


def run(args: argparse.Namespace) -> int:
    from mobilenet.registry import create_model, kind_of, load
    from mobilenet.weights.format import save_weights

    check_output(args, args.output, (".safetensors",), "a safetensors file", [args.source])
    model = create_model(args.model, weights=args.source) if args.model else load(args.source)
    given = {name: getattr(args, name) for name in PREPROCESSING_FLAGS if getattr(args, name) is not None}
    given |= {name: tuple(given[name]) for name in ("mean", "std") if name in given}
    if given:  # what the weights expect, where the file does not say it right (timm's crop 0.95, say)
        model.preprocessing = replace(model.preprocessing, **given)
    save_weights(model, args.output)
    config = model.config
    if args.json:
        print(json.dumps({"source": str(args.source), "output": str(args.output), "task": kind_of(model).name,
                          **asdict(config)}))  # fmt: skip
        return 0
    print(f"{args.source} -> {args.output}: {kind_of(model).name}, {config.arch} width {config.width_mult:g}, "
          f"{model.num_classes} classes, input {model.preprocessing.input_size}")  # fmt: skip
    return 0
