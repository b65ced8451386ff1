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
from mobilenet.data.images import to_tensor


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


class AugmentedImages(Dataset):
    """Training samples of ``images``, indexed by ``(index, seed)``: randomly cropped and flipped, or None if the
    image is unreadable."""

    def __init__(self, images: LabelledImages, augmentation: Augmentation) -> None:
        self.images, self.augmentation = images, augmentation

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int] | None:
        index, seed = key
        item = self.images.image(index)
        if item is None:
            return None
        image, label = item
        rng = np.random.default_rng(seed)
        pre = self.images.pre
        image = random_resized_crop(image, pre.input_size, self.augmentation, rng)
        if self.augmentation.hflip and rng.random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return to_tensor(image, pre), label
