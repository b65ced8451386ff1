"""DeepLab's training augmentation of an (image, mask) pair, every draw from the seed of the sample.

As research/deeplab's input preprocessing: a random scale, by default 0.5 to 2.0 in steps of 0.25 (the image bilinear,
the mask nearest), padding at the bottom and right up to the crop where the scaled pair is smaller (the image with the
mean pixel, the mask with the ignore index), a random crop, a random horizontal flip. The trainer's sampler gives
each sample a seed from (run seed, epoch, index) (see ``mobilenet.training.sampling``), so a sample is cropped the
same in every worker process and after a resume.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from mobilenet.data.images import normalize
from mobilenet.nn.preprocessing import Preprocessing
from mobilenet.segmentation.data import IGNORE_INDEX, PAD_PIXEL, SegmentationPairs, resize_classes

SCALES = tuple(0.5 + 0.25 * step for step in range(7))  # DeepLab's min/max_scale_factor 0.5, 2.0; step 0.25

Crop = tuple[torch.Tensor, torch.Tensor]  # (normalized image (3, crop, crop), int64 classes (crop, crop))


def augment_pair(
    image: Image.Image,
    mask: torch.Tensor,
    crop: int,
    rng: np.random.Generator,
    hflip: bool = True,
    scales: tuple[float, ...] = SCALES,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A random ``crop`` x ``crop`` window of the pair scaled by one of ``scales`` (each equally likely): uint8 pixels
    (3, crop, crop) and classes."""
    scale = float(rng.choice(scales))
    width, height = max(1, int(image.width * scale)), max(1, int(image.height * scale))  # TF truncates
    pixels = torch.from_numpy(np.asarray(image.resize((width, height), Image.Resampling.BILINEAR)).copy())
    canvas = torch.full((3, max(height, crop), max(width, crop)), PAD_PIXEL, dtype=torch.uint8)
    canvas[:, :height, :width] = pixels.permute(2, 0, 1)
    classes = torch.full(canvas.shape[1:], IGNORE_INDEX, dtype=torch.long)
    classes[:height, :width] = resize_classes(mask, (height, width))
    top = int(rng.integers(0, canvas.shape[1] - crop + 1))
    left = int(rng.integers(0, canvas.shape[2] - crop + 1))
    canvas, classes = canvas[:, top : top + crop, left : left + crop], classes[top : top + crop, left : left + crop]
    if hflip and rng.random() < 0.5:
        canvas, classes = canvas.flip(-1), classes.flip(-1)
    return canvas.contiguous(), classes.contiguous()


class AugmentedPairs(Dataset):
    """Training crops of ``pairs``, indexed by ``(index, seed)``: normalized as ``pre`` says, or None (unreadable)."""

    def __init__(
        self, pairs: SegmentationPairs, crop: int, pre: Preprocessing, hflip: bool = True,
        scales: tuple[float, ...] = SCALES,
    ) -> None:  # fmt: skip
        self.pairs, self.crop, self.pre, self.hflip, self.scales = pairs, crop, pre, hflip, scales

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, key: tuple[int, int] | int) -> Crop | None:
        index, seed = key if isinstance(key, tuple) else (key, 0)
        item = self.pairs[index]
        if item is None:
            return None
        pixels, classes = augment_pair(*item, self.crop, np.random.default_rng(seed), self.hflip, self.scales)
        return normalize(pixels, self.pre), classes


def collate_crops(items: Sequence[Crop | None]) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Stack a batch of crops, dropping the unreadable ones (None); also returns how many were dropped."""
    kept = [item for item in items if item is not None]
    if not kept:
        return torch.empty(0), torch.empty(0, dtype=torch.long), len(items)
    return torch.stack([image for image, _ in kept]), torch.stack([mask for _, mask in kept]), len(items) - len(kept)
