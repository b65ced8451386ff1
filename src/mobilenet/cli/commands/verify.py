"""``mobilenet verify``: what a weights file is, and whether our model agrees with the framework that wrote it,
convention by convention (over top-1, or over pixels: the kind of the file says)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "what a weights file is, and whether we compute what its own framework computes"
DESCRIPTION = (
    "Read a weights file (ours, torchvision or timm, a transformers folder, Keras, ONNX, "
    "TFLite) and say what it is: its format, architecture, width, resolution, padding, BatchNorm eps, background "
    "class, preprocessing and class names. Then run it beside the framework or runtime it came from (LiteRT, "
    "transformers, timm, torchvision, Keras, ONNX Runtime, where installed) on your images or built-in ones, and flip "
    "each convention in turn: one whose other choice agrees better is named as the cause. Exits 1 when one is. "
    "Agreement counts top-1 for a classifier, pixels for a model that labels every pixel."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mobilenet.utils.values import positive_float

    parser.add_argument("weights", help="a weights file, or a transformers folder")
    parser.add_argument("--images", type=Path, help="a folder of images (default: 16 built-in ones)")
    parser.add_argument("--padding", choices=("symmetric", "tf_same"), help="read the file with this padding")
    parser.add_argument("--bn-eps", type=positive_float, help="read the file with this BatchNorm eps")
    parser.add_argument("--json", action="store_true", help="print the findings as one JSON object")


def run(args: argparse.Namespace) -> int:
    from mobilenet.nn.preprocessing import Preprocessing
    from mobilenet.registry import verify

    overrides = {name: getattr(args, name) for name in ("padding", "bn_eps") if getattr(args, name) is not None}
    found = verify(args.weights, args.images, **overrides)
    wrong = found.wrong_conventions != []
    if args.json:
        print(json.dumps(found.to_dict()))
        return 1 if wrong else 0
    pre = found.preprocessing
    print(f"{found.path}: {found.format}, {found.arch} width {found.width_mult:g} at {found.input_size}, "
          f"{found.num_classes} classes")  # fmt: skip
    background = "dropped (the file has 1001 outputs)" if found.background_dropped else "none"
    print(f"  padding {found.padding}, BatchNorm eps {found.bn_eps:g}, background class {background}")
    mean, std = (", ".join(f"{x:.3g}" for x in pre[key]) for key in ("mean", "std"))
    print(f"  preprocessing: {Preprocessing(**pre).describe_resize()}, mean ({mean}), std ({std})")
    names = [name.split(",")[0] for name in found.class_names or []]
    print(f"  class names: {', '.join(names[:3])}, ... ({len(names)})" if names else "  class names: none")
    if found.reference is not None:
        largest = "" if found.max_abs_diff is None else f", max |difference| {found.max_abs_diff:.3g}"
        print(f"  against {found.reference} on {found.images} images: {found.measure} agreement "
              f"{found.agreement:.1%}{largest}")  # fmt: skip
        for line in found.lines():
            print(f"  {line}")
    if found.caveat:
        print(f"  note: {found.caveat}")
    print(f"verdict: {found.verdict}")
    return 1 if wrong else 0
