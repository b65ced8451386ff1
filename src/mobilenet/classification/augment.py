"""A classifier's training augmentation: a random resized crop and flip of each labelled image.

Every draw comes from the seed the trainer's sampler gives each sample (see ``mobilenet.training.sampling``), so a
resumed run sees exactly the images an uninterrupted one does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from mobilenet.classification.data import LabelledImages
from mobilenet.data.crops import Box, crop_resized


@dataclass(frozen=True)
class Augmentation:
    """Training augmentation: random resized crop (area ``scale``, aspect ``ratio``), optional flip."""

    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: bool = True


def crop_box(width: int, height: int, aug: Augmentation, rng: np.random.Generator) -> Box:
    """A random box of area ``aug.scale`` and aspect ``aug.ratio`` of a ``width`` x ``height`` image (left, top,
    right, bottom), drawn as torchvision's ``RandomResizedCrop`` draws it."""
    area = width * height
    for _ in range(10):
        target = area * rng.uniform(*aug.scale)
        aspect = math.exp(rng.uniform(math.log(aug.ratio[0]), math.log(aug.ratio[1])))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            left, top = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
            return left, top, left + w, top + h
    # else the central crop of the largest allowed aspect
    w, h = width, height
    if width / height > aug.ratio[1]:
        w = round(height * aug.ratio[1])
    elif width / height < aug.ratio[0]:
        h = round(width / aug.ratio[0])
    left, top = (width - w) // 2, (height - h) // 2
    return left, top, left + w, top + h


class AugmentedImages(Dataset):
    """Training samples of ``images``, indexed by ``(index, seed)``: a random box of each, resized to the input size
    and perhaps flipped, as uint8 pixels (3, size, size) that the task normalises on the device; None if the image is
    unreadable. The box is drawn from the image's header, before its pixels are decoded, so that a JPEG is decoded at
    the smallest scale the box allows (see :mod:`mobilenet.data.crops`)."""

    def __init__(self, images: LabelledImages, augmentation: Augmentation) -> None:
        self.images, self.augmentation = images, augmentation

    def __len__(self) -> int:
        return len(self.images)

    def augmented(self, image: Image.Image, rng: np.random.Generator) -> torch.Tensor:
        size = self.images.pre.input_size
        pixels = crop_resized(image, crop_box(*image.size, self.augmentation, rng), (size, size))
        return pixels.flip(-1) if self.augmentation.hflip and rng.random() < 0.5 else pixels

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int] | None:
        index, seed = key
        rng = np.random.default_rng(seed)
        return self.images.read(index, lambda image: self.augmented(image, rng))
