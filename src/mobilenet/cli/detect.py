"""``mobilenet detect``: boxes of image files, with class names and scores, drawn on the images (PNG); and
``mobilenet eval`` of a detector: COCO mAP on a labelled set (COCO JSON, VOC or YOLO folder)."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from mobilenet.cli.output import print_per_image
from mobilenet.cli.values import probability


def cmd_detect(args: argparse.Namespace) -> int:
    from mobilenet.detection.load import load_detector
    from mobilenet.detection.predict import detect_files

    refuse_other_models(args.weights)
    model = load_detector(args.weights)
    return print_per_image(detect_files(model, args.images, args.score, args.out), args.json, describe_detections)


def refuse_other_models(weights: str | Path) -> None:
    """A classifier's or a segmentation model's weights file, refused in one line naming the command it is for."""
    from mobilenet.detection.load import is_detection_file
    from mobilenet.segmentation.load import is_segmentation_file

    if not Path(weights).is_file() or is_detection_file(weights):
        return  # a missing file or a weights name: the loader says what is wrong
    if is_segmentation_file(weights):
        raise ValueError(f"{weights} holds a segmentation model, not a detector: run it with `mobilenet segment`")
    raise ValueError(
        f"{weights} holds a MobileNet classifier, not a detector: run it with `mobilenet predict`, or train a "
        f"detector from it with `mobilenet train --recipe ssdlite --weights {weights} --data <detection set>`"
    )


def describe_detections(result: dict[str, Any]) -> str:
    lines = [
        f"  {d['score']:6.1%}  {d['name']:<16} [{', '.join(f'{v:.0f}' for v in d['box'])}]"
        for d in result["detections"]
    ]
    written = f" -> {result['drawn']}" if "drawn" in result else ""
    return "\n".join([f"{result['image']}: {len(lines)} detections{written}", *lines])


def evaluate_detection_folder(args: argparse.Namespace) -> int:
    """``mobilenet eval`` of a detector: COCO's mAP, AP50, AP75 and per-class AP, the model's classes matched to the
    data's by name (detections of classes the data lacks are dropped)."""
    from mobilenet.detection.data import detection_dataset
    from mobilenet.detection.evaluate import plot_precision_recall
    from mobilenet.detection.load import load_detector
    from mobilenet.detection.predict import object_names
    from mobilenet.detection.validate import class_map_by_name, evaluate_detector

    if args.backend not in ("auto", "eager") or args.precision or args.calibration:
        raise ValueError("detection eval runs the PyTorch model: drop --backend, --precision and --calibration")
    if args.ids:
        raise ValueError("--ids lists a segmentation set's images: a detection set's split is --split (e.g. test)")
    dataset = detection_dataset(args.data, args.split)  # first: a bad annotation file fails at once
    overrides = {} if args.max_detections is None else {"max_detections": args.max_detections}
    model = load_detector(args.weights, **overrides)
    names = object_names(model)
    class_map = class_map_by_name(names, dataset.classes)
    result = evaluate_detector(
        model, dataset.records, dataset.classes, args.batch_size, args.workers, progress=not args.json,
        class_map=class_map,
    )  # fmt: skip
    if args.plot:
        title = f"{Path(args.weights).name} on {args.data} ({result.n} images, IoU 0.5)"
        plot_precision_recall(result, args.plot, title=title)
    notes = [*dataset.report.lines(), matching_line(names, dataset.classes, class_map)]
    if args.json:
        print("\n".join(notes), file=sys.stderr)  # stdout holds the JSON alone
        print(result.to_json())
        return 0
    print(
        f"{args.data}: mAP {result.map:.1%}, AP50 {result.ap50:.1%}, AP75 {result.ap75:.1%} on {result.n} images "
        f"(at most {result.max_detections} detections each, {result.skipped} unreadable skipped)"
    )
    print("\n".join(f"  {note}" for note in notes))
    boxes = Counter(label for record in dataset.records for label in record.labels.tolist())
    images = Counter(label for record in dataset.records for label in set(record.labels.tolist()))
    for label, name in enumerate(dataset.classes):
        ap = result.per_class.get(name)
        print(f"  {'    n/a' if ap is None else f'{ap:7.1%}'}  {name} ({images[label]} images, {boxes[label]} boxes)")
    if args.plot:
        print(f"precision-recall curves written to {args.plot}")
    return 0


def matching_line(model_classes: list[str], data_classes: list[str], class_map: dict[int, int]) -> str:
    """How the model's classes met the data's: how many matched, and the data's classes the model cannot find."""
    missing = sorted(set(range(len(data_classes))) - set(class_map.values()))
    line = f"classes matched by name: {len(set(class_map.values()))} of the data's {len(data_classes)}"
    line += f" (the model has {len(model_classes)}; detections of the others are dropped)"
    if missing:
        shown = ", ".join(data_classes[label] for label in missing[:4]) + " ..." * (len(missing) > 4)
        line += f"; no model class is named {shown} (their boxes count as missed)"
    return line


def add_parsers(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "detect",
        help="boxes, classes and scores of objects in images (SSDLite / SSD)",
        description="Detect objects in images: one line per box (score, class name, x0, y0, x1, y1 in the image's "
        "pixels), or JSON; --out draws the boxes. Class names come with the weights: Google's .tflite and .pb "
        "files take theirs from a labels file beside them (<stem>_labels.txt, one name a line).",
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files to detect objects in")
    p.add_argument(
        "--weights",
        required=True,
        metavar="FILE",
        help="Google's SSD .tflite, a frozen_inference_graph.pb, or a detector saved by `mobilenet train`",
    )
    p.add_argument("--score", type=probability, default=0.3, metavar="S", help="show detections scoring at least S")
    p.add_argument("--out", type=Path, metavar="DIR", help="write DIR/<stem>_detections.png: the image, boxes drawn")
    p.add_argument(
        "--json",
        action="store_true",
        help='one JSON object per image: {"image", "detections": [{"box", "class", "name", "score"}, ...]}',
    )
    p.set_defaults(func=cmd_detect)
