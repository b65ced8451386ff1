"""A box of an image resized to the network's input, as uint8 pixels, with no more decoding than the box needs.

Training's loader spends most of its time here. Two things make it cheap:

- a JPEG not yet decoded is decoded at 1/2, 1/4 or 1/8 of its size when the box still spans ``size`` pixels at that
  scale (libjpeg scales in the DCT and skips most of the inverse transform; the box is never upsampled for it),
  straight into a NumPy array;
- the resize runs on uint8 pixels in PyTorch's antialiased bilinear kernel, the filter of PIL's ``BILINEAR`` (the
  same pixels within a level or two) at about three times its speed, and the pixels stay uint8 to the device,
  where the batch is normalised (:func:`mobilenet.data.images.normalize`): a quarter of the bytes to move.
"""

from __future__ import annotations

import warnings

import numpy as np
import simplejpeg
import torch
from PIL import Image
from torch.nn import functional

Box = tuple[int, int, int, int]  # left, top, right, bottom, in pixels of the full-size image

SCALES = (8, 4, 2)  # the reductions a JPEG decoder makes in its DCT, largest first


def reduction(box: Box, size: tuple[int, int]) -> int:
    """The largest DCT reduction (8, 4, 2, else 1) at which ``box`` still spans ``size`` (width, height) pixels."""
    width, height = box[2] - box[0], box[3] - box[1]
    return next((s for s in SCALES if width // s >= size[0] and height // s >= size[1]), 1)


def decoded_jpeg(image: Image.Image, scale: int) -> np.ndarray | None:
    """A JPEG that PIL has opened but not decoded, decoded at 1/``scale`` by libjpeg-turbo through simplejpeg, which
    writes the array itself (PIL decodes into its own 4-byte pixels and copies them out again: 15-20% more time); the
    pixels are PIL's, decoded by the same library. None for what PIL should decode: another format, a CMYK JPEG
    (libjpeg cannot make RGB of it), and a file libjpeg warns about (extraneous bytes, say), which simplejpeg refuses
    where PIL decodes it, or fails on with its own error."""
    if image.format != "JPEG" or not image.tile or image.mode not in ("RGB", "L"):
        return None
    image.fp.seek(0)
    width, height = image.size
    try:  # the smallest decoded size at least 1/scale of the full one is exactly that (rounded up): libjpeg's M/8
        return simplejpeg.decode_jpeg(
            image.fp.read(), colorspace="RGB", min_width=-(-width // scale), min_height=-(-height // scale)
        )
    except ValueError:
        return None


def decode_for(image: Image.Image, box: Box, size: tuple[int, int]) -> tuple[np.ndarray, Box]:
    """The pixels of ``image`` (opened, perhaps not yet decoded) as an (H, W, 3) uint8 array, decoded at the smallest
    scale that keeps ``box`` at least ``size`` across, and ``box`` in that array's pixels.

    A JPEG not yet decoded goes to libjpeg-turbo through :func:`decoded_jpeg`; any other image through PIL."""
    full_width, full_height = image.size
    pixels = decoded_jpeg(image, reduction(box, size))
    if pixels is None:
        image.load()
        pixels = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    height, width = pixels.shape[:2]
    if (width, height) == (full_width, full_height):
        return pixels, box
    left, top = round(box[0] * width / full_width), round(box[1] * height / full_height)
    right = max(left + 1, min(width, round(box[2] * width / full_width)))
    bottom = max(top + 1, min(height, round(box[3] * height / full_height)))
    return pixels, (left, top, right, bottom)


def resize_pixels(pixels: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """(H, W, 3) uint8 pixels resized to a (3, height, width) uint8 tensor, ``size`` = (width, height), with PIL's
    antialiased bilinear filter."""
    with warnings.catch_warnings():  # PIL's arrays are read-only; the resize only reads them
        warnings.simplefilter("ignore", UserWarning)
        chw = torch.from_numpy(pixels).permute(2, 0, 1)
    resized = functional.interpolate(chw[None], size=(size[1], size[0]), mode="bilinear", antialias=True)
    return resized[0]


def crop_resized(image: Image.Image, box: Box, size: tuple[int, int]) -> torch.Tensor:
    """``box`` of ``image`` (opened or decoded) resized to ``size`` (width, height): a (3, height, width) uint8
    tensor, decoded no larger than it needs to be."""
    pixels, (left, top, right, bottom) = decode_for(image, box, size)
    return resize_pixels(pixels[top:bottom, left:right], size)
