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
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Preprocessing:
        data: dict[str, Any] = json.loads(text)
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    @property
    def resize_size(self) -> int:
        return round(self.input_size / self.crop_pct)
