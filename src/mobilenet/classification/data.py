"""Labelled images for training and evaluation: class folders, the embedded digits set, augmentation.

Augmentation draws from the seed the trainer's sampler gives each sample (see
``mobilenet.training.sampling``), so a resumed run sees exactly the images an uninterrupted one does.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from mobilenet.data.images import IMAGE_SUFFIXES, load_image, resize_and_crop, to_tensor
from mobilenet.nn.preprocessing import Preprocessing

MIN_SIDE = 8  # smaller images carry no usable content at any network resolution: skipped


@dataclass(frozen=True)
class Augmentation:
    """Training augmentation: random resized crop (area ``scale``, aspect ``ratio``), optional flip."""

    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: bool = True


def random_resized_crop(image: Image.Image, size: int, aug: Augmentation, rng: np.random.Generator) -> Image.Image:
    """Crop a random area and aspect ratio of the image and resize it to ``size`` x ``size``."""
    width, height = image.size
    area = width * height
    for _ in range(10):
        target = area * rng.uniform(*aug.scale)
        aspect = math.exp(rng.uniform(math.log(aug.ratio[0]), math.log(aug.ratio[1])))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            left, top = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
            break
    else:  # fall back to the central crop of the largest allowed aspect
        w, h = width, height
        if width / height > aug.ratio[1]:
            w = round(height * aug.ratio[1])
        elif width / height < aug.ratio[0]:
            h = round(width / aug.ratio[0])
        left, top = (width - w) // 2, (height - h) // 2
    return image.resize((size, size), Image.Resampling.BILINEAR, box=(left, top, left + w, top + h))


class LabelledImages(Dataset):
    """(image, label) pairs from files or in-memory PIL images, augmented for training or not.

    Indexed by ``(index, seed)`` (the trainer's sampler); an unreadable or tiny image yields
    ``None`` and a warning, and :func:`collate` drops and counts it.
    """

    def __init__(
        self,
        samples: Sequence[tuple[str | Path | Image.Image, int]],
        classes: list[str],
        pre: Preprocessing,
        augmentation: Augmentation | None = None,
    ) -> None:
        self.samples, self.classes, self.pre, self.augmentation = list(samples), classes, pre, augmentation

    def __len__(self) -> int:
        return len(self.samples)

    def without_augmentation(self) -> LabelledImages:
        return LabelledImages(self.samples, self.classes, self.pre)

    def __getitem__(self, key: tuple[int, int] | int) -> tuple[torch.Tensor, int] | None:
        index, seed = key if isinstance(key, tuple) else (key, 0)
        source, label = self.samples[index]
        try:
            image = source.convert("RGB") if isinstance(source, Image.Image) else load_image(source)
        except (OSError, ValueError) as error:
            warnings.warn(f"skipped: {error}", stacklevel=2)
            return None
        if min(image.size) < MIN_SIDE:
            warnings.warn(f"skipped: {source} is only {image.size[0]}x{image.size[1]} pixels", stacklevel=2)
            return None
        if self.augmentation is None:
            image = resize_and_crop(image, self.pre)
        else:
            rng = np.random.default_rng(seed)
            image = random_resized_crop(image, self.pre.input_size, self.augmentation, rng)
            if self.augmentation.hflip and rng.random() < 0.5:
                image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return to_tensor(image, self.pre), label


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


def split_fraction(samples: list, fraction: float, seed: int) -> tuple[list, list]:
    """A stratified, seeded split: ``fraction`` of every class goes to validation."""
    if not 0 < fraction < 1:
        raise ValueError(f"the validation fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in sorted({label for _, label in samples}):
        members = [s for s in samples if s[1] == label]
        order = rng.permutation(len(members))
        cut = max(1, round(len(members) * fraction))
        val += [members[i] for i in order[:cut]]
        train += [members[i] for i in order[cut:]]
    return train, val


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
