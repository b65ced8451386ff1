"""Datasets for training and evaluation: image folders, the embedded digits set, augmentation, sampling.

Augmentation is seeded per sample from (run seed, epoch, index), so a sample looks the same whichever
worker process loads it and whether or not the run was interrupted: that is what makes a resumed run
equal to an uninterrupted one.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler

from mobilenet.preprocess import Preprocessing, load_image, preprocess, resize_and_crop, to_tensor

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
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


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A well-mixed seed for one sample's augmentation in one epoch."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


class LabelledImages(Dataset):
    """(image, label) pairs from files or in-memory PIL images, augmented for training or not.

    Indexed by ``(index, seed)`` (see :class:`ShardedSampler`); an unreadable or tiny image yields
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


class ShardedSampler(Sampler[tuple[int, int]]):
    """A seeded per-epoch permutation, cut into global batches, each split in contiguous rank shards.

    Rank ``r`` of ``world`` takes items ``[r*b, (r+1)*b)`` of every global batch of ``world*b``, so a
    run on N processes sees the same micro-batches as one process accumulating N of them. Incomplete
    global batches are dropped; ``start`` skips the batches already trained on when resuming.
    """

    def __init__(
        self, size: int, micro_batch: int, seed: int, epoch: int = 0, rank: int = 0, world: int = 1, start: int = 0
    ) -> None:
        self.size, self.micro_batch, self.seed, self.epoch = size, micro_batch, seed, epoch
        self.rank, self.world, self.start = rank, world, start

    def batches_per_epoch(self) -> int:
        return self.size // (self.micro_batch * self.world)

    def __len__(self) -> int:
        return (self.batches_per_epoch() - self.start) * self.micro_batch

    def __iter__(self) -> Iterator[tuple[int, int]]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.size, generator=generator).tolist()
        global_batch = self.micro_batch * self.world
        for batch in range(self.start, self.batches_per_epoch()):
            first = batch * global_batch + self.rank * self.micro_batch
            for index in order[first : first + self.micro_batch]:
                yield index, sample_seed(self.seed, self.epoch, index)


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
        raise ImportError("the embedded dataset needs scikit-learn: pip install scikit-learn") from None
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


# A tensor batch, one image file, a folder of images (searched recursively) or a list of files.
ImageSource = torch.Tensor | str | Path | Sequence[str | Path]


def image_batch(source: ImageSource, preprocessing: Preprocessing, limit: int | None = None) -> torch.Tensor:
    """Images as one (N, C, H, W) float batch, preprocessed for the model; at most ``limit`` of them.

    A folder contributes every image under it; when it holds more than ``limit``, images are taken
    evenly through the sorted list, so that a class-per-folder dataset gives every class a share.
    """
    if isinstance(source, torch.Tensor):
        if source.dim() != 4:
            raise ValueError(f"expected an image batch of shape (N, C, H, W), got {tuple(source.shape)}")
        return source[:limit].float()
    if isinstance(source, str | Path):
        path = Path(source)
        if path.is_dir():
            paths = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            if not paths:
                raise ValueError(f"no image files under {path}: pass a folder of images")
        else:
            paths = [path]
    else:
        paths = [Path(p) for p in source]
    if not paths:
        raise ValueError("no images given: pass a folder, image files or a tensor batch")
    if limit is not None and len(paths) > limit:
        paths = [paths[i * len(paths) // limit] for i in range(limit)]
    return torch.stack([preprocess(p, preprocessing) for p in paths])
