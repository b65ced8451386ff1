"""``mobilenet segment``: class masks of image files, written as palette PNGs with overlays."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mobilenet.cli.output import print_per_image
from mobilenet.segmentation.config import SEGMENTATION_MODELS


def cmd_segment(args: argparse.Namespace) -> int:
    from mobilenet.registry import create_model
    from mobilenet.segmentation.predict import segment_files

    model = create_model(args.model, weights=args.weights)
    return print_per_image(segment_files(model, args.images, args.out), args.json, describe_segmentation)


def describe_segmentation(result: dict[str, Any]) -> str:
    shares = ", ".join(f"{name} {share:.1%}" for name, share in result["classes"].items())
    written = f" -> {result['mask']}, {result['overlay']}" if "mask" in result else ""
    return f"{result['image']}: {shares}{written}"


def evaluate_segmentation_folder(args: argparse.Namespace) -> int:
    """``mobilenet eval`` of a segmentation model: DeepLab's protocol on a VOC or COCO128 folder."""
    from mobilenet.registry import create_model
    from mobilenet.segmentation.data import segmentation_dataset
    from mobilenet.segmentation.evaluate import evaluate_segmentation, model_predictor, plot_class_iou

    if args.backend not in ("auto", "eager") or args.precision or args.calibration:
        raise ValueError(
            "segmentation eval runs the PyTorch model: --backend, --precision, --calibration are for classifiers"
        )
    model = create_model("deeplabv3_mobilenet_v2", weights=args.weights)
    dataset = segmentation_dataset(args.data, args.ids)
    result = evaluate_segmentation(
        model_predictor(model), dataset, model.config.input_size, args.batch_size, args.workers, not args.json
    )
    if args.plot:
        plot_class_iou(result, args.plot, title=f"{Path(args.weights).name} on {args.data} ({result.n} images)")
    if args.json:
        print(result.to_json())
        return 0
    print(f"{args.data}: mIoU {result.miou:.2%}, pixel accuracy {result.pixel_acc:.2%} on {result.n} images "
          f"({result.skipped} unreadable skipped)")  # fmt: skip
    for name, scores in result.per_class.items():
        iou = "    n/a" if scores["iou"] is None else f"{scores['iou']:7.1%}"
        print(f"  {iou}  {name} ({scores['images']} images)")
    if args.plot:
        print(f"per-class IoU written to {args.plot}")
    return 0


def add_parsers(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("segment", help="the class of every pixel of images (Mobile DeepLabv3)")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files to segment")
    p.add_argument("--weights", required=True,
                   help="Coral's deeplabv3_*.tflite, a trained deeplabv3 .safetensors, or a weights name")  # fmt: skip
    p.add_argument("--model", default="deeplabv3_mobilenet_v2", choices=sorted(SEGMENTATION_MODELS),
                   help="the model of a weights name (a file says its own)")  # fmt: skip
    p.add_argument("--out", type=Path,
                   help="write DIR/<stem>.png (palette PNG, pixel = class) and DIR/<stem>_overlay.png")  # fmt: skip
    p.add_argument("--json", action="store_true", help="one JSON object per image: class pixel shares (and files)")
    p.set_defaults(func=cmd_segment)
