"""``mobilenet detect``: boxes of image files, with class names and scores, drawn on the images (PNG)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mobilenet.cli.output import print_per_image
from mobilenet.cli.values import probability
from mobilenet.detection.config import DETECTION_MODELS


def cmd_detect(args: argparse.Namespace) -> int:
    from mobilenet.detection.predict import detect_files
    from mobilenet.registry import create_model

    model = create_model(args.model, weights=args.weights)
    return print_per_image(detect_files(model, args.images, args.score, args.out), args.json, describe_detections)


def describe_detections(result: dict[str, Any]) -> str:
    lines = [
        f"  {d['score']:6.1%}  {d['name']:<16} [{', '.join(f'{v:.0f}' for v in d['box'])}]"
        for d in result["detections"]
    ]
    written = f" -> {result['drawn']}" if "drawn" in result else ""
    return "\n".join([f"{result['image']}: {len(lines)} detections{written}", *lines])


def add_parsers(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("detect", help="boxes, classes and scores of objects in images (SSDLite / SSD)")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files to detect objects in")
    p.add_argument("--weights", required=True,
                   help="Google's SSD .tflite, a frozen_inference_graph.pb, or a trained ssd .safetensors")  # fmt: skip
    p.add_argument("--model", default="ssdlite_mobilenet_v2", choices=sorted(DETECTION_MODELS),
                   help="the detector to build (a weights file says its own)")  # fmt: skip
    p.add_argument("--score", type=probability, default=0.3, help="show detections scoring at least this")
    p.add_argument("--out", type=Path, help="write DIR/<stem>_detections.png: the image with its boxes drawn")
    p.add_argument(
        "--json",
        action="store_true",
        help='one JSON object per image: {"image", "detections": [{"box", "class", "name", "score"}, ...]}',
    )
    p.set_defaults(func=cmd_detect)
