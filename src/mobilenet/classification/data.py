"""Labelled images: class folders, their tar shards and the embedded digits, read and preprocessed as a model
evaluates them.

An unreadable or tiny image is ``None`` (and a warning), which :func:`collate` drops and counts: a run or an
evaluation never stops for one bad file.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from mobilenet.data.images import IMAGE_SUFFIXES, Stored, labelled_members, opened_image, preprocess_rgb
from mobilenet.data.tables import Row, Table, is_table
from mobilenet.data.tars import Member, is_shards, shard_classes, shard_paths
from mobilenet.nn.preprocessing import Preprocessing

MIN_SIDE = 8  # smaller images carry no usable content at any network resolution: skipped

T = TypeVar("T")
Sample = tuple[str | Path | Stored | Image.Image, int]  # an image (file, shard's, table's, PIL image), its label


class LabelledImages(Dataset):
    """(image, label) pairs from files or in-memory PIL images, resized and center-cropped as ``pre`` says."""

    def __init__(self, samples: Sequence[Sample], classes: list[str], pre: Preprocessing) -> None:
        self.samples, self.classes, self.pre = list(samples), classes, pre

    def __len__(self) -> int:
        return len(self.samples)

    def read(self, index: int, decode: Callable[[Image.Image], T]) -> tuple[T, int] | None:
        """``decode`` of sample ``index``'s image (a file opened with only its header read, or the image in memory)
        and its label, or None (with a warning) if it is unreadable or tiny."""
        source, label = self.samples[index]
        try:
            with contextlib.nullcontext(source) if isinstance(source, Image.Image) else opened_image(source) as image:
                if min(image.size) < MIN_SIDE:
                    warnings.warn(f"skipped: {source} is only {image.size[0]}x{image.size[1]} pixels", stacklevel=2)
                    return None
                return decode(image), label
        except (OSError, ValueError) as error:
            warnings.warn(f"skipped: {error}", stacklevel=2)
            return None

    def image(self, index: int) -> tuple[Image.Image, int] | None:
        """Sample ``index`` as an RGB image and its label, or None (with a warning) if it is unreadable or tiny."""
        return self.read(index, lambda image: image.convert("RGB"))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int] | None:
        item = self.image(index)
        if item is None:
            return None
        return preprocess_rgb(item[0], self.pre), item[1]


def collate(batch: list[tuple[torch.Tensor, int] | None]) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Stack a batch, dropping the samples that could not be read; also returns how many were dropped."""
    kept = [item for item in batch if item is not None]
    if not kept:
        return torch.empty(0), torch.empty(0, dtype=torch.long), len(batch)
    images = torch.stack([image for image, _ in kept])
    return images, torch.tensor([label for _, label in kept]), len(batch) - len(kept)


def scan_folder(root: str | Path) -> tuple[list[tuple[Path, int]], list[str]]:
    """``root/<class>/<image>`` as (path, label) pairs and sorted class names; clear errors up front."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {root}")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ValueError(f"{root} has no class folders: expected {root}/<class>/<image files>")
    samples = []
    for label, name in enumerate(classes):
        files = sorted(p for p in (root / name).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"class folder {root / name} has no images: remove it or add images")
        samples += [(path, label) for path in files]
    return samples, classes


def scan_shards(source: str | Path) -> tuple[list[tuple[Member, int]], list[str]]:
    """The (image, label) samples of classification shards (see ``mobilenet shard``) and the class names: those of
    ``classes.txt`` beside the first shard, else the indices."""
    shards, samples = shard_paths(source), []
    for image, label in labelled_members(shards, "cls", "classification"):
        text = label.read_bytes().strip()
        if not text.isdigit():
            raise ValueError(f"{label} holds {text[:20]!r}, not a class index: is this a classification shard?")
        samples.append((image, int(text)))
    return samples, shard_classes(shards, max((label for _, label in samples), default=-1) + 1)


def scan_table(source: str | Path) -> tuple[list[tuple[Row, int]], list[str]]:
    """The (image, label) samples of a Hugging Face dataset (see :mod:`mobilenet.data.tables`) and the class names:
    its image column, and its ``ClassLabel`` column's names (or an integer ``label`` column's indices)."""
    table = Table(source)
    image, named = table.image_column(), table.columns_of("ClassLabel")
    column = named[0] if named else next((c for c in ("label", "labels") if c in table.dataset.column_names), None)
    if column is None:
        raise ValueError(f"{source} has no column of class labels (its columns: {', '.join(table.dataset.column_names)}"
                         "): a classification dataset has a ClassLabel column or an integer 'label'")  # fmt: skip
    labels = table.values(column)
    if not all(isinstance(label, int) and label >= 0 for label in labels):
        raise ValueError(f"{source}'s column {column!r} holds values that are no class index (0, 1, ...)")
    names = table.dataset.features[column].names if named else [str(i) for i in range(max(labels, default=-1) + 1)]
    return list(zip(table.rows(image), labels, strict=True)), list(names)


def scan_labelled(source: str | Path) -> tuple[Sequence[Sample], list[str]]:
    """Labelled images from ``root/<class>/<image>`` folders, their shards (a folder of ``.tar`` files, one, or a
    brace pattern) or a Hugging Face dataset (saved, Arrow, Parquet or ``hf:NAME``), as (image, label) samples and
    the class names."""
    if is_table(source):
        return scan_table(source)
    return scan_shards(source) if is_shards(source) else scan_folder(source)


def load_digits_images() -> tuple[list[tuple[Image.Image, int]], list[str]]:
    """scikit-learn's bundled digits (1,797 real 8x8 scans of handwritten digits) as PIL images."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError("the embedded dataset needs scikit-learn: pip install 'mobilenet[demo]'") from None
    digits = load_digits()
    pixels = (digits.images * (255 / 16)).round().astype(np.uint8)
    # Upscaled once here so that the random crop works at the network's input resolution.
    images = [Image.fromarray(p, mode="L").resize((32, 32), Image.Resampling.BILINEAR) for p in pixels]
    return list(zip(images, digits.target.tolist(), strict=True)), [str(d) for d in range(10)]


def imagenet_targets(
    classes: list[str], model_classes: list[str] | None, class_index: dict[str, int] | None
) -> list[int]:
    """Map dataset folder names to a model's output indices.

    Folders named like the model's classes map by name; ImageNet synset folders (``n01440764``) map
    through a class index (synset -> index, as in ``imagenet_class_index.json``).
    """
    if model_classes is not None and all(c in model_classes for c in classes):
        return [model_classes.index(c) for c in classes]
    if class_index is not None:
        missing = [c for c in classes if c not in class_index]
        if missing:
            raise ValueError(f"folders {missing[:3]} are not in the class index: is this an ImageNet-synset folder?")
        return [class_index[c] for c in classes]
    raise ValueError(
        f"the folders ({', '.join(classes[:3])}, ...) are not the model's classes: for ImageNet synset folders "
        "pass a class index (--class-index imagenet_class_index.json)"
    )
