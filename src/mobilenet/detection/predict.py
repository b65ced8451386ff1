"""Images in, boxes out: ``detect`` (boxes in image pixels, class names, scores) and ``mobilenet detect``'s PNGs.

An image is resized whole to the model's square input (TF's ``fixed_shape_resizer``: the aspect ratio is not kept,
as the detectors were trained), and the boxes are scaled back to the image's own pixels. The model is an
:class:`~mobilenet.detection.model.SSD` or anything else that runs like one (a :class:`Detector`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import nn

from mobilenet.data.images import RESAMPLING, AnyImages, as_rgb_image, each_file, each_image, to_tensor
from mobilenet.detection.boxes import clip_boxes
from mobilenet.detection.config import OUTPUTS, SSDConfig
from mobilenet.detection.postprocess import postprocess
from mobilenet.nn.preprocessing import Preprocessing
from mobilenet.utils.files import atomic_write
from mobilenet.utils.modes import evaluating
from mobilenet.utils.outputs import checked_outputs

DEFAULT_SCORE = 0.3  # what ``mobilenet detect`` shows; evaluation keeps everything above the model's own threshold


class Detector(Protocol):
    """What detection runs: an SSD, or anything that takes its inputs and gives its raw ``(box_codes, class_logits)``
    with its config, preprocessing, class names and anchors, as ``mobilenet.inference.deploy`` makes of an SSD on
    ONNX Runtime or OpenVINO. NMS and box decoding stay here, the same whatever computed the outputs."""

    config: SSDConfig
    preprocessing: Preprocessing
    class_names: list[str] | None

    def __call__(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...

    def anchors(self, height: int, width: int) -> torch.Tensor: ...


def input_device(model: Detector) -> torch.device:
    """Where a detector's inputs go: its parameters' device, or the CPU for one without any (a deployed SSD)."""
    parameter = next(model.parameters(), None) if isinstance(model, nn.Module) else None
    return torch.device("cpu") if parameter is None else parameter.device


@dataclass(frozen=True)
class Detections:
    """One image's detections: boxes (x0, y0, x1, y1) in its pixels, scores, 0-based classes and their names."""

    boxes: np.ndarray  # float32 [D, 4]
    scores: np.ndarray  # float32 [D]
    classes: np.ndarray  # int64 [D]: 0 is the first object class (the model's column 1)
    names: list[str]

    def to_json(self) -> list[dict[str, Any]]:
        return [
            {"box": [round(float(v), 2) for v in box], "class": int(c), "name": name, "score": round(float(s), 4)}
            for box, c, name, s in zip(self.boxes, self.classes, self.names, self.scores, strict=True)
        ]


def resize_to_input(image: Image.Image, pre: Preprocessing) -> Image.Image:
    return image.resize((pre.input_size, pre.input_size), RESAMPLING[pre.interpolation])


def object_names(model: Detector) -> list[str]:
    """The names of the model's object classes (its columns after the background), or their numbers."""
    names = getattr(model, "class_names", None)
    return list(names[1:]) if names else [str(i) for i in range(model.config.num_classes - 1)]


@torch.no_grad()
def run_detector(
    model: Detector,
    batch: torch.Tensor,
    sizes: list[tuple[int, int]],
    score_threshold: float,
    max_detections: int | None = None,
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """A batch of model inputs -> per image (boxes in pixels of its (width, height) in ``sizes``, scores, classes),
    at most ``max_detections`` of them (None: the model's own).

    Boxes are clipped to the image: TF's per-class NMS clips them already, TF Lite's fast NMS leaves them reaching
    out of it (``benchmarks/detection_coco128.py`` scores those unclipped, as LiteRT gives them)."""
    config = model.config
    box_codes, class_logits = model(batch)
    found = postprocess(
        box_codes.float(), class_logits.float(), model.anchors(*batch.shape[-2:]).to(batch.device),
        score_threshold=score_threshold, iou_threshold=config.iou_threshold,
        max_detections=config.max_detections if max_detections is None else max_detections,
        max_per_class=config.max_per_class, scales=config.box_coder_scales, nms=config.nms,
    )  # fmt: skip
    scale = [torch.tensor(size * 2, dtype=torch.float32, device=batch.device) for size in sizes]  # (w, h, w, h)
    return [
        (clip_boxes(boxes, 1.0, 1.0) * s, scores, classes)
        for (boxes, scores, classes), s in zip(found, scale, strict=True)
    ]


def detect(
    model: Detector, images: AnyImages, score_threshold: float | None = None, batch_size: int = 8
) -> list[Detections]:
    """Detect objects in each image, each resized whole to the model's input.

    Args:
        model: an SSD, or what :func:`~mobilenet.inference.deploy.deploy` made of one.
        images: one image or several, of any kind :func:`~mobilenet.data.images.each_image` takes.
        score_threshold: the lowest score kept (None: the model's own, ``config.score_threshold``).
        batch_size: images per forward pass.

    Returns:
        Per image its :class:`Detections`: boxes in the image's own pixels, best first, at most
        ``config.max_detections``.
    """
    pre = model.preprocessing
    threshold = model.config.score_threshold if score_threshold is None else score_threshold
    names = object_names(model)
    pictures = [as_rgb_image(image) for image in each_image(images)]
    device = input_device(model)
    results: list[Detections] = []
    with evaluating(model):
        for start in range(0, len(pictures), batch_size):
            chunk = pictures[start : start + batch_size]
            batch = torch.stack([to_tensor(resize_to_input(picture, pre), pre) for picture in chunk]).to(device)
            for boxes, scores, classes in run_detector(model, batch, [picture.size for picture in chunk], threshold):
                labels = classes.cpu().numpy().astype(np.int64)
                results.append(
                    Detections(boxes.cpu().numpy(), scores.cpu().numpy(), labels, [names[c] for c in labels])
                )
    return results


def detect_images(model: Detector, images: list[Image.Image], score: float = DEFAULT_SCORE) -> list[dict[str, Any]]:
    """Decoded images run as one batch (the server's batches): per image its detections scoring at least ``score``,
    as :func:`detect_files` gives them."""
    return [{"detections": found.to_json()} for found in detect(model, images, score, batch_size=max(1, len(images)))]


def draw_detections(image: Image.Image, detections: Detections) -> Image.Image:
    """The image with each box drawn and labelled with its class name and score, in letters sized to the image.

    A label sits on its box's top edge, above it where there is room, inside it otherwise; labels are drawn after
    every box, lowest score first, so that the best detections' labels stay on top where they overlap.
    """
    drawn = image.convert("RGB").copy()
    draw = ImageDraw.Draw(drawn)
    side = max(drawn.size)
    width = max(2, round(side / 250))
    font = ImageFont.load_default(size=max(12, round(side / 45)))
    rows = list(zip(detections.boxes, detections.classes, detections.names, detections.scores, strict=True))
    for box, c, _, _ in rows:
        draw.rectangle([float(v) for v in box], outline=PALETTE[int(c) % len(PALETTE)], width=width)
    for box, c, name, score in sorted(rows, key=lambda row: float(row[3])):
        label = f"{name} {score:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
        height = bottom - top + 2 * width
        x = min(max(float(box[0]), 0.0), max(drawn.width - (right - left) - 2 * width, 0))
        y = float(box[1]) - height if float(box[1]) >= height else float(box[1])
        draw.rectangle([x, y, x + right - left + 2 * width, y + height], fill=PALETTE[int(c) % len(PALETTE)])
        draw.text((x + width - left, y + width - top), label, fill="black", font=font)
    return drawn


# Distinct, light colours (black text stays readable on them).
PALETTE = ("#ffb000", "#00e0ff", "#7dff5a", "#ff6ad5", "#ffe14d", "#9f9bff", "#ff8a5c", "#4dffc3")


def detect_files(
    model: Detector,
    images: list[str],
    score: float = DEFAULT_SCORE,
    out: str | Path | None = None,
    overwrite: bool = False,
) -> list[dict[str, Any]]:
    """Detect in image files: per image its detections scoring at least ``score``, and with ``out`` a PNG of the boxes
    drawn, written there.

    Args:
        model: a detector, or a deployed one.
        images: image files; an unreadable one is reported in its result (``"error"``) and the others still run.
        score: the lowest score kept.
        out: a folder for each image's ``<name>_detections.png``, ``<name>`` its stem (with its folder's name where
            stems repeat).
        overwrite: replace files that exist there; without it they are refused before any image is read.

    Returns:
        Per image: ``image``, ``detections`` (box, class, name, score each), and ``drawn`` when written.
    """
    written = checked_outputs(images, out, OUTPUTS, overwrite) if out is not None else None

    def result(path: str, image: Image.Image) -> dict[str, Any]:
        (found,) = detect(model, [image], score)
        described: dict[str, Any] = {"image": path, "detections": found.to_json()}
        if written is not None:
            (target,) = written(path)
            drawn = draw_detections(image, found)
            atomic_write(target, lambda tmp: drawn.save(tmp, format="PNG"))
            described["drawn"] = str(target)
        return described

    return each_file(images, result)


def describe(result: dict[str, Any]) -> str:
    """One :func:`detect_files` result for people: the image, then a line per detection (score, class, box)."""
    lines = [
        f"  {d['score']:6.1%}  {d['name']:<16} [{', '.join(f'{v:.0f}' for v in d['box'])}]"
        for d in result["detections"]
    ]
    written = f" -> {result['drawn']}" if "drawn" in result else ""
    return "\n".join([f"{result['image']}: {len(lines)} detections{written}", *lines])
