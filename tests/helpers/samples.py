"""Each registered kind's tiny run: its data made on the spot, its ``mobilenet train`` settings, the images and
labelled data its commands run on, and a way to break its data. The contract suite (``tests/kinds``) runs every
kind through the same checks with these; a new kind adds its sample here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from mobilenet.classification.data import load_digits_images
from mobilenet.segmentation.data import IGNORE_INDEX

# Segmentation: coloured shapes of three VOC classes on a noisy background, a 1-pixel void (255) border around each
# shape as VOC's masks have, every third image 64x48 so that crops get padded.
COLOURS = {1: (220, 40, 40), 8: (40, 200, 60), 15: (40, 70, 230)}  # aeroplane, cat, person
# Detection: red discs and blue squares on a noisy background.
SHAPES = ("disc", "square")

# Width 0.35 at 64x64: 12 training images in 6 steps of 2 per epoch. DeepLab's recipe (dropout on, BatchNorm frozen).
SEGMENTATION_TINY = {
    "recipe": "deeplab",
    "model": "deeplabv3_mobilenet_v2",
    "width_mult": 0.35,
    "input_size": 64,
    "batch_size": 2,
    "epochs": 2,
    "lr": 0.02,
    "lr_batch": None,
    "workers": 0,
}
# SSDLite at width 0.35 on 64x64 inputs (maps 4, 2, 1, 1, 1, 1): 12 training images in 6 steps of 2 per epoch.
DETECTION_TINY = {
    "recipe": "ssdlite",
    "model": "ssdlite_mobilenet_v2",
    "width_mult": 0.35,
    "input_size": 64,
    "batch_size": 2,
    "epochs": 2,
    "lr": 0.003,
    "warmup_epochs": 0.0,
    "workers": 0,
}


def write_voc_masks(root: Path, count: int, seed: int) -> Path:
    """``root/JPEGImages/*.jpg`` and ``root/SegmentationClass/*.png``: two shapes of two classes per image."""
    rng = np.random.default_rng(seed)
    (root / "JPEGImages").mkdir(parents=True)
    (root / "SegmentationClass").mkdir()
    for index in range(count):
        size = (64, 64) if index % 3 else (64, 48)
        noise = rng.integers(90, 160, 3) + rng.normal(0, 12, (size[1], size[0], 3))
        image = Image.fromarray(np.clip(noise, 0, 255).astype(np.uint8))
        mask, void = Image.new("L", size), Image.new("L", size)
        for label in rng.choice(list(COLOURS), size=2, replace=False):
            left, top = rng.integers(0, size[0] - 24), rng.integers(0, size[1] - 24)
            box = (left, top, left + rng.integers(14, 24), top + rng.integers(14, 24))
            shape = "ellipse" if rng.random() < 0.5 else "rectangle"
            getattr(ImageDraw.Draw(image), shape)(box, fill=COLOURS[label])
            getattr(ImageDraw.Draw(mask), shape)(box, fill=int(label))
            getattr(ImageDraw.Draw(void), shape)(box, outline=255)
        classes = np.where(np.asarray(void) == 255, IGNORE_INDEX, np.asarray(mask)).astype(np.uint8)
        image.save(root / "JPEGImages" / f"{index:04d}.jpg", quality=95)
        Image.fromarray(classes).save(root / "SegmentationClass" / f"{index:04d}.png")
    return root


def write_voc_boxes(root: Path, count: int, val: int, seed: int = 0) -> Path:
    """A VOC devkit folder: ``JPEGImages``, ``Annotations`` and ``ImageSets/Main/{train,val}.txt``."""
    rng = np.random.default_rng(seed)
    for folder in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (root / folder).mkdir(parents=True)
    names = []
    for index in range(count + val):
        name = f"{index:04d}"
        noise = rng.integers(90, 160, 3) + rng.normal(0, 12, (64, 80, 3))
        image = Image.fromarray(np.clip(noise, 0, 255).astype(np.uint8))
        objects = []
        for _ in range(0 if index == 1 else rng.integers(1, 3)):  # image 1: a negative
            label = int(rng.integers(0, 2))
            side = int(rng.integers(18, 34))
            left, top = int(rng.integers(0, 80 - side)), int(rng.integers(0, 64 - side))
            box = (left, top, left + side, top + side)
            draw = ImageDraw.Draw(image)
            (draw.ellipse if label == 0 else draw.rectangle)(box, fill=(230, 40, 40) if label == 0 else (40, 60, 230))
            objects.append(
                f"<object><name>{SHAPES[label]}</name><difficult>0</difficult><bndbox><xmin>{box[0]}</xmin>"
                f"<ymin>{box[1]}</ymin><xmax>{box[2]}</xmax><ymax>{box[3]}</ymax></bndbox></object>"
            )
        image.save(root / "JPEGImages" / f"{name}.jpg", quality=95)
        (root / "Annotations" / f"{name}.xml").write_text(
            f"<annotation><filename>{name}.jpg</filename><size><width>80</width><height>64</height>"
            f"<depth>3</depth></size>{''.join(objects)}</annotation>"
        )
        names.append(name)
    (root / "ImageSets/Main/train.txt").write_text("\n".join(names[:count]) + "\n")
    (root / "ImageSets/Main/val.txt").write_text("\n".join(names[count:]) + "\n")
    return root


def write_digits(root: Path, count: int, keypoints: bool = False) -> Path:
    """The first ``count`` embedded digits as PNG files: ``root/<digit>/<n>.png``, or with ``keypoints`` in one
    folder with a ``keypoints.json`` of the centre of each digit's ink."""
    from tests.kinds.keypoints import LABELS, ink_centre

    images, classes = load_digits_images()
    points = {}
    for n, (image, label) in enumerate(images[:count]):
        folder = root if keypoints else root / classes[label]
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"{n}.png")
        points[f"{n}.png"] = ink_centre(image).tolist()
    if keypoints:
        (root / LABELS).write_text(json.dumps(points))
    return root


@dataclass(frozen=True)
class Sample:
    """A kind's tiny run and what its commands run on, made in a folder."""

    settings: dict  # `mobilenet train` settings of a run of two epochs of a few steps each
    metric: str  # the validation score the processes of a torchrun run sum or gather
    images: list[Path]  # images to predict on
    labelled: Path  # data to evaluate on, laid out as the kind reads it
    model: dict  # create_model's name and overrides of a small model of the kind
    damage: Callable[[Path], str]  # breaks the training data (settings["data"]): returns what the refusal names
    class_names: list[str] | None = None  # of the small model, as the labelled data names its classes
    amp: dict = field(default_factory=dict)  # what a run in bf16 and channels-last changes of ``settings``


def classification(root: Path) -> Sample:
    data = write_digits(root / "digits", 120)
    settings = {
        "task": "classification",
        "data": str(data),
        "model": "mobilenet_v2_035",
        "input_size": 32,
        "small_input": True,
        "batch_size": 16,
        "val_fraction": 0.2,
        "epochs": 2,
        "lr": 0.05,
        "workers": 0,
    }

    def damage(data: Path) -> str:
        (data / "empty").mkdir()
        return "class folder"

    return Sample(
        settings,
        "top1",
        sorted(data.rglob("*.png"))[:2],
        data,
        {"name": "mobilenet_v2_035", "num_classes": 10, "input_size": 32},
        damage,
        [str(digit) for digit in range(10)],
    )


def segmentation(root: Path) -> Sample:
    data = root / "voc"
    write_voc_masks(data / "train", 12, seed=0)
    write_voc_masks(data / "val", 4, seed=1)
    settings = {**SEGMENTATION_TINY, "data": str(data)}

    def damage(data: Path) -> str:
        Image.fromarray(np.full((64, 64), 40, np.uint8)).save(data / "train" / "SegmentationClass" / "0001.png")
        return "0001.png"

    return Sample(
        settings,
        "miou",
        sorted((data / "val" / "JPEGImages").iterdir())[:2],
        data / "val",
        {"name": "deeplabv3_mobilenet_v2", "width_mult": 0.35, "input_size": 64},
        damage,
    )


def detection(root: Path) -> Sample:
    data = write_voc_boxes(root / "shapes", 12, 4)
    settings = {**DETECTION_TINY, "data": str(data)}

    def damage(data: Path) -> str:
        (data / "Annotations" / "0002.xml").write_text("<annotation><size><width>80</wid")
        return "0002.xml"

    return Sample(
        settings,
        "map",
        sorted((data / "JPEGImages").iterdir())[:2],
        data,
        {"name": "ssdlite_mobilenet_v2", "width_mult": 0.35, "input_size": 64, "num_classes": 3},
        damage,
        ["background", *SHAPES],
        {"input_size": 288},  # smaller, an extra layer's depthwise conv meets a 1x1 map (see DetectionTask)
    )


def keypoints(root: Path) -> Sample:
    data = write_digits(root / "points", 100, keypoints=True)
    settings = {
        "task": "keypoints",
        "data": str(data),
        "batch_size": 16,
        "val_fraction": 0.2,
        "epochs": 2,
        "freeze_bn": True,
    }

    def damage(data: Path) -> str:
        labels = data / "keypoints.json"
        points = json.loads(labels.read_text())
        points["3.png"] = [[2.0, 0.5]]
        labels.write_text(json.dumps(points))
        return "3.png"

    return Sample(settings, "pck", sorted(data.glob("*.png"))[:2], data, {"name": "keypoints_mobilenet_v2_035"}, damage)


SAMPLES: dict[str, Callable[[Path], Sample]] = {
    "classification": classification,
    "segmentation": segmentation,
    "detection": detection,
    "keypoints": keypoints,
}
