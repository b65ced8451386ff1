"""What a network's weights expect of an image: a record saved with them; :mod:`mobilenet.data.images` applies it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# TensorFlow-trained MobileNets take (x - 127.5) / 127.5 of 0..255 pixels: [-1, 1].
TF_MEAN = (0.5, 0.5, 0.5)
TF_STD = (0.5, 0.5, 0.5)
# The resampling filters of the resize, by the names torchvision and timm give them (timm's weights use bicubic).
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
# How the image reaches input_size x input_size. "short_side": the short side to input_size / crop_pct, then a
# center crop (torchvision's and timm's evaluation). "central_fraction": TF-slim's (inception_preprocessing's
# preprocess_for_eval): keep the central crop_pct of the height and of the width, then a bilinear resize of that
# straight to the square, aspect not kept; the evaluation behind TF-slim's and TFLite's published accuracies.
RESIZES = ("short_side", "central_fraction")


@dataclass(frozen=True)
class Preprocessing:
    """Resize the short side to ``input_size / crop_pct`` with ``interpolation``, center-crop ``input_size``, normalize.

    With ``resize="central_fraction"`` (TF-slim's evaluation), keep the central ``crop_pct`` of the height and of
    the width instead, and resize that to ``input_size`` x ``input_size`` as TensorFlow 1's bilinear resize does
    (``interpolation`` must then be ``"bilinear"``). ``mean`` and ``std`` apply to pixels scaled to [0, 1], per
    RGB channel. A record saved before ``interpolation`` existed reads back as ``"bilinear"``, which is what
    those files were made with; one saved before ``resize`` existed, as ``"short_side"``.
    Applied by :mod:`mobilenet.data.images` (``ImageTransform(pre)(image)``: this record stays plain data).
    """

    input_size: int = 224
    crop_pct: float = 0.875
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    interpolation: str = "bilinear"
    resize: str = "short_side"

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation {self.interpolation!r} is not one of {', '.join(INTERPOLATIONS)}")
        if self.resize not in RESIZES:
            raise ValueError(f"resize {self.resize!r} is not one of {', '.join(RESIZES)}")
        if self.resize == "central_fraction" and self.interpolation != "bilinear":
            raise ValueError(
                f"resize 'central_fraction' is TF-slim's bilinear resize: interpolation must be 'bilinear', "
                f"not {self.interpolation!r}"
            )

    def to_json(self) -> str:
        data = asdict(self)
        if self.resize == "short_side":  # left out: a default record is the JSON that earlier versions wrote and read
            del data["resize"]
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Preprocessing:
        data: dict[str, Any] = json.loads(text)
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    @property
    def resize_size(self) -> int:
        """The short side before the crop (``"short_side"`` resizing only)."""
        return round(self.input_size / self.crop_pct)

    def describe_resize(self) -> str:
        """The resize and crop in words, as ``mobilenet verify`` prints them."""
        if self.resize == "central_fraction":
            return (
                f"central {self.crop_pct:.1%} of height and width, resized to {self.input_size}x{self.input_size} "
                "(TF-slim: TF1 bilinear, aspect not kept)"
            )
        return f"short side to {self.resize_size} ({self.interpolation}), crop {self.input_size}"
