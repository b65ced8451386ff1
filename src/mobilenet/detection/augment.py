"""SSD's training augmentation of an image with its boxes, every draw from the sample's generator, and the eval resize.

As the SSD paper (Liu et al. 2016, Sec. 3.6) and its Caffe release (``ssd_pascal.py``) do it: photometric distortion,
a zoom-out onto a mean-filled canvas up to 4x (prob 0.5), an IoU-constrained random crop, a horizontal flip, and a
resize to the square input. Written with NumPy and PIL, which the package already depends on: torchvision's v2
transforms are no dependency of it (and draw from the global RNG, not a per-sample generator), albumentations would
be a new one. The trainer seeds each sample's generator from (run seed, epoch, index), so a sample is augmented the
same in every worker and after a resume. :class:`AugmentedRecords` is the training set: each sample augmented, then
matched to the model's anchors.

The geometry is one window in the source image's pixel coordinates: the zoom-out canvas is a window larger than the
image, the crop a window inside it. It is rendered once, by PIL's antialiased resize of the part of the image the
window holds, so no 4x canvas is ever allocated and the boxes move by the same arithmetic as the pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from mobilenet.data.images import load_image, normalize
from mobilenet.detection.data import DetectionRecord
from mobilenet.detection.matcher import MATCH_THRESHOLD, targets
from mobilenet.detection.model import SSD

MEAN_PIXEL = (123, 117, 104)  # ImageNet's mean RGB: SSD's zoom-out fill
MIN_IOUS = (0.1, 0.3, 0.5, 0.7, 0.9)  # SSD's crop samplers, besides the whole image and an unconstrained crop
TRIALS = 50  # Caffe SSD's max_trials per sampler


class DetectionSample(NamedTuple):
    pixels: torch.Tensor  # uint8 [3, S, S], RGB 0..255 (normalized later, as the model's preprocessing says)
    boxes: torch.Tensor  # float32 [n, 4] xyxy normalized to [0, 1], each of positive area
    labels: torch.Tensor  # int64 [n]


def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """RGB in [0, 1] (..., 3) as HSV in [0, 1] (hue as a fraction of the circle), as :func:`colorsys.rgb_to_hsv`."""
    value, low = rgb.max(axis=-1), rgb.min(axis=-1)
    chroma = value - low
    safe = np.where(chroma > 0, chroma, 1)
    red, green, blue = (rgb[..., channel] for channel in range(3))
    sector = np.where(
        value == red,
        ((green - blue) / safe) % 6,
        np.where(value == green, (blue - red) / safe + 2, (red - green) / safe + 4),
    )
    hue = np.where(chroma > 0, sector / 6, 0)
    return np.stack([hue, np.where(value > 0, chroma / np.where(value > 0, value, 1), 0), value], axis=-1)


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """HSV in [0, 1] (..., 3) as RGB in [0, 1], as :func:`colorsys.hsv_to_rgb`."""
    hue, saturation, value = (hsv[..., channel, None] for channel in range(3))
    k = (np.array([5.0, 3.0, 1.0]) + hue * 6) % 6  # f(n) = V - V S max(0, min(k, 4 - k, 1)), k = (n + 6 H) mod 6
    return value - value * saturation * np.clip(np.minimum(k, 4 - k), 0, 1)


def photometric_distort(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """SSD's colour distortion of float RGB pixels 0..255 (..., 3), each step with probability 0.5: brightness
    +-32, then contrast x[0.5, 1.5] first or last (SSD's random order), saturation x[0.5, 1.5], hue +-18 degrees."""
    pixels = pixels.astype(np.float32)
    if rng.random() < 0.5:
        pixels = (pixels + rng.uniform(-32, 32)).clip(0, 255)
    contrast_first = rng.random() < 0.5
    for step in ("contrast", "colour") if contrast_first else ("colour", "contrast"):
        if step == "contrast" and rng.random() < 0.5:
            pixels = (pixels * rng.uniform(0.5, 1.5)).clip(0, 255)
        elif step == "colour":
            saturation = rng.uniform(0.5, 1.5) if rng.random() < 0.5 else None
            hue = rng.uniform(-18, 18) / 360 if rng.random() < 0.5 else None
            if saturation is not None or hue is not None:
                hsv = rgb_to_hsv(pixels / 255)
                hsv[..., 1] = (hsv[..., 1] * (saturation or 1.0)).clip(0, 1)
                hsv[..., 0] = (hsv[..., 0] + (hue or 0.0)) % 1.0  # hue is a circle: it wraps
                pixels = (hsv_to_rgb(hsv) * 255).astype(np.float32)
    return pixels


def _iou(window: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of each of ``window`` [W, 4] with each of ``boxes`` [n, 4] (xyxy): [W, n]."""
    low, high = np.maximum(window[:, None, :2], boxes[None, :, :2]), np.minimum(window[:, None, 2:], boxes[None, :, 2:])
    inter = (high - low).clip(0).prod(axis=-1)
    return inter / (_area(window)[:, None] + _area(boxes)[None, :] - inter)


def _area(boxes: np.ndarray) -> np.ndarray:
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def _centres_inside(windows: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    return ((centres[None] > windows[:, None, :2]) & (centres[None] < windows[:, None, 2:])).all(axis=-1)


def sample_crop(canvas: np.ndarray, boxes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """SSD's crop of ``canvas`` (a window xyxy in pixels), as Caffe SSD's batch samplers: each sampler (the whole
    canvas; patches of scale [0.3, 1] and aspect [1/2, 2] whose IoU with some box is at least 0.1 ... 0.9; an
    unconstrained patch) makes up to 50 trials, and one of the samplers that found a patch is picked at random.
    A patch must hold at least one box centre (the boxes kept are those whose centre it holds)."""
    size = canvas[2:] - canvas[:2]
    found = [canvas]
    for min_iou in (*MIN_IOUS, None):
        scale = rng.uniform(0.3, 1.0, TRIALS)
        aspect = rng.uniform(np.maximum(0.5, scale**2), np.minimum(2.0, 1 / scale**2))
        extent = np.stack([scale * np.sqrt(aspect), scale / np.sqrt(aspect)], axis=1)  # of the canvas, each <= 1
        origin = rng.uniform(0, 1, (TRIALS, 2)) * (1 - extent)
        windows = np.tile(canvas[:2], 2) + np.hstack([origin, origin + extent]) * np.tile(size, 2)
        good = np.ones(TRIALS, dtype=bool)
        if len(boxes):
            good = _centres_inside(windows, boxes).any(axis=1)
            good &= (_iou(windows, boxes) >= min_iou).any(axis=1) if min_iou is not None else True
        elif min_iou is not None:
            continue  # no box to overlap: only the unconstrained patch applies
        if good.any():
            found.append(windows[np.argmax(good)])
    return found[rng.integers(len(found))]


def _render(image: Image.Image, window: np.ndarray, size: int, fill: tuple[int, int, int]) -> tuple[np.ndarray, tuple]:
    """The ``window`` (xyxy in the image's pixels, may reach beyond it) resized to ``size`` x ``size`` uint8 RGB,
    ``fill`` where it holds no image; also the output rectangle (top, bottom, left, right) the image covers."""
    image = image if image.mode == "RGB" else image.convert("RGB")
    out = np.empty((size, size, 3), dtype=np.uint8)
    out[:] = fill
    scale = size / (window[2:] - window[:2])
    inside = np.clip(window, 0, [image.width, image.height] * 2)  # the image's part of the window
    low = np.clip(np.ceil((inside[:2] - window[:2]) * scale - 1e-6), 0, size).astype(int)  # whole output pixels
    high = np.clip(np.floor((inside[2:] - window[:2]) * scale + 1e-6), 0, size).astype(int)
    if (high <= low).any():
        return out, (0, 0, 0, 0)
    source = np.concatenate([window[:2] + low / scale, window[:2] + high / scale]).clip(0, [*image.size] * 2)
    part = image.resize(tuple(int(v) for v in high - low), Image.Resampling.BILINEAR, box=tuple(source.tolist()))
    out[low[1] : high[1], low[0] : high[0]] = np.asarray(part)
    return out, (low[1], high[1], low[0], high[0])


def _window_boxes(boxes: np.ndarray, labels: np.ndarray, window: np.ndarray, keep: np.ndarray | None = None):
    """Boxes in pixels as normalized to ``window`` and clipped to it; those of positive area (and in ``keep``)."""
    scaled = ((boxes - np.tile(window[:2], 2)) / np.tile(window[2:] - window[:2], 2)).clip(0, 1)
    keep = (scaled[:, 2] > scaled[:, 0]) & (scaled[:, 3] > scaled[:, 1]) & (True if keep is None else keep)
    return torch.from_numpy(scaled[keep].astype(np.float32)), torch.from_numpy(labels[keep].astype(np.int64))


def ssd_augment(
    image: Image.Image,
    boxes: np.ndarray,
    labels: np.ndarray,
    size: int,
    rng: np.random.Generator,
    fill: tuple[int, int, int] = MEAN_PIXEL,
    hflip: bool = True,
) -> DetectionSample:
    """One training sample of an RGB ``image`` with its ``boxes`` (xyxy pixels) and ``labels``: distorted, zoomed
    out, cropped, flipped and resized to ``size`` x ``size``, every draw from ``rng``."""
    boxes, labels = np.asarray(boxes, dtype=np.float64).reshape(-1, 4), np.asarray(labels).reshape(-1)
    window = np.array([0.0, 0.0, image.width, image.height])
    if rng.random() < 0.5:  # zoom out: the image somewhere on a canvas up to 4x its sides
        ratio = rng.uniform(1, 4)
        offset = rng.uniform(0, 1, 2) * (ratio - 1) * window[2:]
        window = np.concatenate([-offset, -offset + ratio * window[2:]])
    window = sample_crop(window, boxes, rng)
    pixels, (top, bottom, left, right) = _render(image, window, size, fill)
    # Per pixel, so the same on the resized image as on the source (up to interpolation); the fill stays the mean.
    pixels[top:bottom, left:right] = photometric_distort(pixels[top:bottom, left:right], rng).round().astype(np.uint8)
    keep = _centres_inside(window[None], boxes)[0] if len(boxes) else None
    boxes_out, labels_out = _window_boxes(boxes, labels, window, keep)
    tensor = torch.from_numpy(pixels).permute(2, 0, 1)
    if hflip and rng.random() < 0.5:  # mirror: x0' = 1 - x1, x1' = 1 - x0
        tensor, boxes_out = (
            tensor.flip(-1),
            boxes_out[:, [2, 1, 0, 3]] * torch.tensor([-1, 1, -1, 1]) + torch.tensor([1, 0, 1, 0]),
        )
    return DetectionSample(tensor.contiguous(), boxes_out, labels_out)


def resize_sample(image: Image.Image, boxes: np.ndarray, labels: np.ndarray, size: int) -> DetectionSample:
    """The evaluation transform: the whole image resized to ``size`` x ``size`` (bilinear, antialiased), boxes
    normalized to it."""
    window = np.array([0.0, 0.0, image.width, image.height])
    pixels, _ = _render(image, window, size, MEAN_PIXEL)
    boxes, labels = np.asarray(boxes, dtype=np.float64).reshape(-1, 4), np.asarray(labels).reshape(-1)
    boxes_out, labels_out = _window_boxes(boxes, labels, window)
    return DetectionSample(torch.from_numpy(pixels).permute(2, 0, 1).contiguous(), boxes_out, labels_out)


def record_image(record: DetectionRecord) -> Image.Image:
    """A record's image as RGB, checked against the size its boxes were given in."""
    image = load_image(record.image)
    if image.size != (record.width, record.height):
        raise ValueError(
            f"{record.image} is {image.width}x{image.height} but its annotation says {record.width}x{record.height}: "
            f"its boxes would be misplaced (fix the annotation's size)"
        )
    return image


def augment_record(record: DetectionRecord, size: int, rng: np.random.Generator, **options) -> DetectionSample:
    """:func:`ssd_augment` of a record's image and boxes (``options``: ``fill``, ``hflip``)."""
    return ssd_augment(record_image(record), record.boxes, record.labels, size, rng, **options)


def resize_record(record: DetectionRecord, size: int) -> DetectionSample:
    """:func:`resize_sample` of a record's image and boxes."""
    return resize_sample(record_image(record), record.boxes, record.labels, size)


Sample = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]  # image, box codes, class targets, positives


class AugmentedRecords(Dataset):
    """Augmented training samples matched to the anchors (at IoU ``match_threshold``), indexed by ``(index, seed)``;
    None when unreadable."""

    def __init__(
        self, records: Sequence[DetectionRecord], model: SSD, hflip: bool, match_threshold: float = MATCH_THRESHOLD
    ) -> None:
        self.records, self.hflip, self.match_threshold = list(records), hflip, match_threshold
        self.size, self.pre, self.config = model.config.input_size, model.preprocessing, model.config
        self.anchors = model.anchors(self.size, self.size)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: tuple[int, int] | int) -> Sample | None:
        index, seed = key if isinstance(key, tuple) else (key, 0)
        try:
            sample = augment_record(self.records[index], self.size, np.random.default_rng(seed), hflip=self.hflip)
        except (OSError, ValueError):
            return None
        boxes, labels = torch.as_tensor(sample.boxes, dtype=torch.float32), torch.as_tensor(sample.labels)
        codes, classes, positives = targets(
            boxes, labels, self.anchors, self.config.num_classes, self.config.box_coder_scales, self.match_threshold
        )
        return normalize(sample.pixels, self.pre), codes, classes, positives
