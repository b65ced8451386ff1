"""``mobilenet predict`` and ``eval``: classification of image files, through ``deploy``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mobilenet.cli.detect import evaluate_detection_folder
from mobilenet.cli.output import print_per_image
from mobilenet.cli.segment import evaluate_segmentation_folder
from mobilenet.cli.values import non_negative_int, positive_int
from mobilenet.inference.backends import BACKENDS, PRECISIONS, backend_for
from mobilenet.nn.variants import MODELS


def cmd_predict(args: argparse.Namespace) -> int:
    from mobilenet.classification.predict import classify
    from mobilenet.detection.load import is_detection_file
    from mobilenet.inference.deploy import deploy, load_deployed
    from mobilenet.registry import create_model

    if is_detection_file(args.weights):
        raise ValueError(f"{args.weights} holds an SSD detector, not a classifier: run it with `mobilenet detect`")
    if args.model:
        model = create_model(args.model, weights=args.weights)
        backend = backend_for(len(args.images), args.backend, args.precision or "fp32")
        runner = deploy(model, backend, args.precision or "fp32", args.calibration)
    else:
        runner = load_deployed(args.weights, args.backend, args.precision, args.calibration, images=len(args.images))
    return print_per_image(classify(runner, args.images, top=args.top), args.json, describe_classes)


def describe_classes(result: dict[str, Any]) -> str:
    lines = [f"  {entry['prob']:6.1%}  {entry['index']:>5}  {entry['name']}" for entry in result["top"]]
    return "\n".join([result["image"], *lines])


def cmd_eval(args: argparse.Namespace) -> int:
    from mobilenet.classification.evaluate import evaluate_folder
    from mobilenet.detection.load import is_detection_file
    from mobilenet.segmentation.load import is_segmentation_file

    if is_detection_file(args.weights):
        return evaluate_detection_folder(args)
    if args.split or args.max_detections is not None:
        raise ValueError(f"--split and --max-detections are for detectors: {args.weights} holds none")
    if is_segmentation_file(args.weights):
        return evaluate_segmentation_folder(args)
    if args.ids:
        raise ValueError("--ids lists the images of a segmentation set (VOC's ImageSets): the weights are a classifier")

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
        from mobilenet.classification.plots import plot_confusion

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


def _inference_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default="auto", choices=["auto", *BACKENDS],
                   help="auto: the fastest installed; eager: the plain PyTorch model")  # fmt: skip
    p.add_argument("--precision", choices=sorted({x for v in PRECISIONS.values() for x in v}),
                   help="default: fp32; an OpenVINO IR (.xml) runs as it was saved")  # fmt: skip
    p.add_argument("--calibration", help="int8: a folder of images (or one image) to calibrate on")


def add_parsers(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("predict", help="top-K classes of images")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files to classify")
    p.add_argument("--weights", required=True, help="safetensors, .pth (timm/torchvision), .tflite or OpenVINO .xml")
    p.add_argument("--model", choices=sorted(MODELS),
                   help="architecture of a bare state dict (default: the file's metadata)")  # fmt: skip
    p.add_argument("--top", type=positive_int, default=5, help="how many classes to show per image")
    p.add_argument("--json", action="store_true", help="one JSON object per image")
    _inference_flags(p)
    p.set_defaults(func=cmd_predict)

    p = commands.add_parser(
        "eval", help="accuracy on a folder of classes, mIoU of segmentation masks, or COCO mAP of detectors"
    )
    p.add_argument("--weights", required=True, help="any weights file mobilenet can load, or an OpenVINO .xml")
    p.add_argument("--data", required=True, type=Path,
                   help="root/<class>/<image>, ImageNet synsets too; segmentation: a VOC or COCO128 root; "
                   "detection: a COCO .json, or a COCO, VOC or YOLO folder")  # fmt: skip
    p.add_argument(
        "--class-index", type=Path, help="synset -> index JSON (imagenet_class_index.json) for synset folders"
    )
    p.add_argument("--batch-size", type=positive_int, default=64, help="images per batch")
    p.add_argument("--workers", type=non_negative_int, default=2,
                   help="image-decoding worker processes; 0 decodes in this one")  # fmt: skip
    p.add_argument("--ids", type=Path, help="segmentation: the ids to score, one a line (VOC's ImageSets/Segmentation)")
    p.add_argument("--split", help="detection: the split to score (VOC's ImageSets/Main/<split>.txt: test; COCO: val)")
    p.add_argument("--max-detections", type=positive_int,
                   help="detection: the detections scored per image (default: the model's own)")  # fmt: skip
    p.add_argument("--plot", type=Path, help="write the confusion matrix (segmentation: per-class IoU bars; "
                   "detection: precision-recall curves) as a PNG")  # fmt: skip
    p.add_argument("--json", action="store_true",
                   help="one JSON object: top1, top5, n, per_class, confusion (segmentation: miou, ...; "
                   "detection: map, ap50, ap75, ...)")  # fmt: skip
    _inference_flags(p)
    p.set_defaults(func=cmd_eval)
