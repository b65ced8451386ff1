"""Images in, class masks out: ``segment`` and the PNGs of ``mobilenet segment`` (a palette mask and an overlay)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from torch import nn

from mobilenet.data.images import AnyImages, each_file, each_image
from mobilenet.segmentation.evaluate import model_predictor, predict_mask
from mobilenet.utils.files import atomic_write


def segment(model: nn.Module, images: AnyImages) -> list[np.ndarray]:
    """The class of every pixel of each image, as a uint8 (H, W) array at the image's own size.

    Each image is evaluated as DeepLab does: padded at the bottom and right to the model's input size with
    the mean pixel (scaled down first if it is larger), the prediction cropped back.
    """
    predict = model_predictor(model)
    crop = model.config.input_size
    return [predict_mask(predict, image, crop).numpy().astype(np.uint8) for image in each_image(images)]


def voc_palette(classes: int = 256) -> list[int]:
    """PASCAL VOC's colour map (its devkit's bit-interleaving rule): class i's RGB, flattened, for a palette PNG."""
    palette = []
    for index in range(classes):
        rgb, value = [0, 0, 0], index
        for bit in range(8):
            for channel in range(3):
                rgb[channel] |= ((value >> channel) & 1) << (7 - bit)
            value >>= 3
        palette.extend(rgb)
    return palette


def save_mask(mask: np.ndarray, path: str | Path) -> None:
    """A palette PNG whose pixel values are the class indices (as VOC's SegmentationClass files are)."""
    image = Image.fromarray(mask.astype(np.uint8), mode="P")
    image.putpalette(voc_palette())
    atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))


def save_overlay(image: Image.Image, mask: np.ndarray, path: str | Path, alpha: float = 0.5) -> None:
    """The image with each labelled (non-background) pixel blended with its class colour."""
    colours = np.array(voc_palette(), dtype=np.float32).reshape(-1, 3)[mask]
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    labelled = (mask > 0)[..., None]
    blended = np.where(labelled, (1 - alpha) * pixels + alpha * colours, pixels)
    overlay = Image.fromarray(blended.round().astype(np.uint8))
    atomic_write(path, lambda tmp: overlay.save(tmp, format="PNG"))


def class_shares(mask: np.ndarray, class_names: list[str] | None) -> dict[str, float]:
    """The share of the image's pixels of each class present, largest first, by name (or index)."""
    counts = np.bincount(mask.ravel())
    shares = {index: count / mask.size for index, count in enumerate(counts) if count}
    name = (lambda i: class_names[i]) if class_names else str
    return {name(i): round(float(share), 6) for i, share in sorted(shares.items(), key=lambda item: -item[1])}


def segment_files(model: nn.Module, images: list[str], out: str | Path | None = None) -> list[dict[str, Any]]:
    """Segment image files: per image its class shares, and with ``out`` the mask and overlay PNGs written there.

    An unreadable image is reported in its result (``"error"``) and the others still run.
    """

    def describe(path: str, image: Image.Image) -> dict[str, Any]:
        (mask,) = segment(model, [image])
        result: dict[str, Any] = {"image": path, "classes": class_shares(mask, model.class_names)}
        if out is not None:
            stem = Path(out) / Path(path).stem
            save_mask(mask, f"{stem}.png")
            save_overlay(image, mask, f"{stem}_overlay.png")
            result.update(mask=f"{stem}.png", overlay=f"{stem}_overlay.png")
        return result

    return each_file(images, describe)
