"""Images in, class masks out: DeepLab's protocol for one image, ``segment``, and the PNGs of ``mobilenet segment``
(a palette mask and an overlay).

A model is run through a :data:`Predictor`: padded uint8 pixels in, classes or logits out. That is what a PyTorch
DeepLab (through :func:`model_predictor`), a deployed one, and Google's runtime on a TFLite file all take, so that
every one of them is run, and scored, by the same code on the same inputs.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from mobilenet.data.images import AnyImage, AnyImages, as_rgb_image, each_file, each_image, normalize
from mobilenet.segmentation.config import OUTPUTS
from mobilenet.segmentation.data import CROP, crop_back, pad_to_crop
from mobilenet.utils.files import atomic_write
from mobilenet.utils.modes import evaluating
from mobilenet.utils.outputs import checked_outputs

# Images padded as DeepLab evaluates them, (N, 3, crop, crop) uint8 pixels 0..255, -> class indices
# (N, crop, crop) or logits (N, classes, crop, crop), at the input's size.
Predictor = Callable[[torch.Tensor], torch.Tensor]


def model_predictor(model: Any) -> Predictor:
    """A segmentation model (a module, or what ``deploy`` made of one) as a :data:`Predictor`: fed on its device as
    its ``preprocessing`` says (Google's DeepLab weights: pixel / 127.5 - 1). Run a module in eval mode."""
    parameter = next(model.parameters(), None) if isinstance(model, nn.Module) else None
    device = torch.device("cpu") if parameter is None else parameter.device
    return lambda pixels: model(normalize(pixels.to(device), model.preprocessing))


def class_indices(output: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """A predictor's output for ``pixels`` as (N, H, W) int64 class indices: logits are reduced by argmax."""
    if output.is_floating_point() and output.dim() == 4:
        output = output.argmax(dim=1)
    expected = (pixels.shape[0], *pixels.shape[2:])
    if output.is_floating_point() or tuple(output.shape) != expected:
        raise ValueError(
            f"the predictor gave {output.dtype} {tuple(output.shape)}: expected class indices {expected} or "
            f"logits (N, classes, H, W) at the input size"
        )
    return output.long()


@torch.inference_mode()
def predict_mask(predict: Predictor, image: AnyImage, crop: int = CROP) -> torch.Tensor:
    """One image's (H, W) class mask at its own size: padded to ``crop``, predicted, cropped back."""
    return predict_masks(predict, [image], crop)[0]


@torch.inference_mode()
def predict_masks(predict: Predictor, images: Sequence[AnyImage], crop: int = CROP) -> list[torch.Tensor]:
    """Each image's (H, W) class mask at its own size, the images run as one batch: each padded to ``crop``."""
    padded = [pad_to_crop(as_rgb_image(image), crop=crop) for image in images]
    pixels = torch.stack([one.pixels for one in padded])
    classes = class_indices(predict(pixels), pixels)
    return [crop_back(found, one) for found, one in zip(classes, padded, strict=True)]


def segment(
    model: Any, images: AnyImages, scales: Sequence[float] | None = None, flip: bool = False, batch_size: int = 1
) -> list[np.ndarray]:
    """The class of every pixel of each image, at the image's own size.

    Each image is evaluated as DeepLab does: padded at the bottom and right to the model's input size with
    the mean pixel (scaled down first if it is larger), the prediction cropped back.

    Args:
        model: a Mobile DeepLabv3, or what :func:`~mobilenet.inference.deploy.deploy` made of one.
        images: one image or several, of any kind :func:`~mobilenet.data.images.each_image` takes.
        scales: run at each of these scales and average the class probabilities (None: as it is; DeepLab's best
            rows: ``(0.5, 0.75, 1.0, 1.25, 1.5, 1.75)``, see :mod:`mobilenet.segmentation.multiscale`).
        flip: also run each scale mirrored left to right, and average.
        batch_size: images per forward pass (each is padded to the model's input size: 1 keeps memory low).

    Returns:
        Per image a uint8 (H, W) array of class indices.
    """
    from mobilenet.segmentation.multiscale import inference

    predict, crop = inference(model_predictor(model), model, scales, flip), model.config.input_size
    items = each_image(images)
    masks = []
    with evaluating(model):
        for start in range(0, len(items), batch_size):
            masks += predict_masks(predict, items[start : start + batch_size], crop)
    return [mask.numpy().astype(np.uint8) for mask in masks]


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


def mask_image(mask: np.ndarray) -> Image.Image:
    """A palette image whose pixel values are the class indices (as VOC's SegmentationClass files are)."""
    image = Image.fromarray(mask.astype(np.uint8), mode="P")
    image.putpalette(voc_palette())
    return image


def save_mask(mask: np.ndarray, path: str | Path) -> None:
    """The class mask as a palette PNG (:func:`mask_image`)."""
    image = mask_image(mask)
    atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))


def class_colors(mask: np.ndarray, class_names: list[str] | None) -> dict[str, str]:
    """The colour of each class present in the mask (VOC's palette, as ``#rrggbb``), by name (or index)."""
    name, colours = class_namer(class_names), palette_colors()
    return {name(int(i)): "#{:02x}{:02x}{:02x}".format(*colours[i]) for i in np.unique(mask)}


def palette_colors() -> np.ndarray:
    """VOC's palette as (256, 3) uint8 RGB rows, class i's colour at row i."""
    return np.array(voc_palette(), dtype=np.uint8).reshape(-1, 3)


def class_namer(class_names: list[str] | None) -> Callable[[int], str]:
    """A class index's name, or the index as text for a model without names."""
    return (lambda i: class_names[i]) if class_names else str


def segment_images(
    model: Any, images: list[Image.Image], scales: Sequence[float] | None = None, flip: bool = False
) -> list[dict[str, Any]]:
    """Decoded images run as one batch (the server's batches): per image its class shares, the colour of each class
    present, and the mask as a palette PNG data URL whose background (class 0) is transparent, to lay over it."""
    results = []
    for mask in segment(model, images, scales, flip, batch_size=max(1, len(images))):
        encoded = io.BytesIO()
        mask_image(mask).save(encoded, format="PNG", transparency=0)
        results.append({
            "classes": class_shares(mask, model.class_names),
            "colors": class_colors(mask, model.class_names),
            "mask": "data:image/png;base64," + base64.b64encode(encoded.getvalue()).decode(),
        })  # fmt: skip
    return results


def save_overlay(image: Image.Image, mask: np.ndarray, path: str | Path, alpha: float = 0.5) -> None:
    """The image with each labelled (non-background) pixel blended with its class colour."""
    colours = palette_colors().astype(np.float32)[mask]
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    labelled = (mask > 0)[..., None]
    blended = np.where(labelled, (1 - alpha) * pixels + alpha * colours, pixels)
    overlay = Image.fromarray(blended.round().astype(np.uint8))
    atomic_write(path, lambda tmp: overlay.save(tmp, format="PNG"))


def class_shares(mask: np.ndarray, class_names: list[str] | None) -> dict[str, float]:
    """The share of the image's pixels of each class present, largest first, by name (or index)."""
    counts = np.bincount(mask.ravel())
    shares = {index: count / mask.size for index, count in enumerate(counts) if count}
    name = class_namer(class_names)
    return {name(i): round(float(share), 6) for i, share in sorted(shares.items(), key=lambda item: -item[1])}


def segment_files(
    model: Any,
    images: list[str],
    out: str | Path | None = None,
    overwrite: bool = False,
    scales: Sequence[float] | None = None,
    flip: bool = False,
) -> list[dict[str, Any]]:
    """Segment image files: per image its class shares, and with ``out`` the mask and overlay PNGs written there.

    Args:
        model: a DeepLab model, or a :data:`Predictor`.
        images: image files; an unreadable one is reported in its result (``"error"``) and the others still run.
        out: a folder for each image's ``<name>.png`` and ``<name>_overlay.png``, ``<name>`` its stem (with its
            folder's name where stems repeat).
        overwrite: replace files that exist there; without it they are refused before any image is read.
        scales: multi-scale inference, as :func:`segment` takes it.
        flip: flipped inference too, as :func:`segment` takes it.

    Returns:
        Per image: ``image``, ``classes`` (shares by name), and ``mask`` and ``overlay`` when written.
    """
    written = checked_outputs(images, out, OUTPUTS, overwrite) if out is not None else None

    def result(path: str, image: Image.Image) -> dict[str, Any]:
        (mask,) = segment(model, [image], scales, flip)
        found: dict[str, Any] = {"image": path, "classes": class_shares(mask, model.class_names)}
        if written is not None:
            mask_path, overlay_path = written(path)
            save_mask(mask, mask_path)
            save_overlay(image, mask, overlay_path)
            found.update(mask=str(mask_path), overlay=str(overlay_path))
        return found

    return each_file(images, result)


def describe(result: dict[str, Any]) -> str:
    """One :func:`segment_files` result for people: the image, its classes' shares, and the files written."""
    shares = ", ".join(f"{name} {share:.1%}" for name, share in result["classes"].items())
    written = f" -> {result['mask']}, {result['overlay']}" if "mask" in result else ""
    return f"{result['image']}: {shares}{written}"
