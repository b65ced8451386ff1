"""Images in: decoding, the evaluation preprocessing of a set of weights, and batches of image files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from mobilenet.nn.preprocessing import Preprocessing

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


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
