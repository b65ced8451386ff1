"""Image loading and the evaluation preprocessing that belongs to a set of weights."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# TensorFlow-trained MobileNets take (x - 127.5) / 127.5 of 0..255 pixels: [-1, 1].
TF_MEAN = (0.5, 0.5, 0.5)
TF_STD = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class Preprocessing:
    """Resize the short side to ``input_size / crop_pct``, center-crop ``input_size``, normalize.

    ``mean`` and ``std`` apply to pixels scaled to [0, 1], per RGB channel.
    """

    input_size: int = 224
    crop_pct: float = 0.875
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Preprocessing:
        data: dict[str, Any] = json.loads(text)
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    @property
    def resize_size(self) -> int:
        return round(self.input_size / self.crop_pct)


def load_image(path: str | Path) -> Image.Image:
    """Open an image as RGB (grayscale, palette, CMYK and alpha are converted), or fail in one line."""
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert("RGB")
    except FileNotFoundError:
        raise FileNotFoundError(f"image not found: {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ValueError(f"cannot read image {path}: {error} (is the file a complete JPEG/PNG?)") from None


def resize_and_crop(image: Image.Image, pre: Preprocessing) -> Image.Image:
    """The geometric part of the preprocessing: short side to ``resize_size``, center crop."""
    width, height = image.size
    scale = pre.resize_size / min(width, height)
    size = (max(pre.input_size, round(width * scale)), max(pre.input_size, round(height * scale)))
    image = image.resize(size, Image.Resampling.BILINEAR)
    left, top = (size[0] - pre.input_size) // 2, (size[1] - pre.input_size) // 2
    return image.crop((left, top, left + pre.input_size, top + pre.input_size))


def to_tensor(image: Image.Image, pre: Preprocessing) -> torch.Tensor:
    """An RGB image, already resized and cropped, as a normalized (3, H, W) float tensor."""
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean = torch.tensor(pre.mean).view(-1, 1, 1)
    std = torch.tensor(pre.std).view(-1, 1, 1)
    return (pixels - mean) / std


def preprocess(path: str | Path, pre: Preprocessing) -> torch.Tensor:
    """An image file as the (3, H, W) tensor that a model with this preprocessing expects."""
    return to_tensor(resize_and_crop(load_image(path), pre), pre)
