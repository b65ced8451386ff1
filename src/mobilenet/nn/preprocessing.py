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


@dataclass(frozen=True)
class Preprocessing:
    """Resize the short side to ``input_size / crop_pct`` with ``interpolation``, center-crop ``input_size``, normalize.

    ``mean`` and ``std`` apply to pixels scaled to [0, 1], per RGB channel. A record saved before
    ``interpolation`` existed reads back as ``"bilinear"``, which is what those files were made with.
    Applied by :mod:`mobilenet.data.images` (``ImageTransform(pre)(image)``: this record stays plain data).
    """

    input_size: int = 224
    crop_pct: float = 0.875
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation {self.interpolation!r} is not one of {', '.join(INTERPOLATIONS)}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Preprocessing:
        data: dict[str, Any] = json.loads(text)
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    @property
    def resize_size(self) -> int:
        return round(self.input_size / self.crop_pct)
