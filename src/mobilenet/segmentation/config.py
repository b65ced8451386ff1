"""A Mobile DeepLabv3's settings as one frozen record (saved with its weights), and the registered models.

Torch-free, as :mod:`mobilenet.nn.config` is: the command line lists and validates models without PyTorch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from mobilenet.nn.config import ModelConfig, Padding

KIND = "deeplabv3"  # what our weights files of this model say they hold
# DeepLab's atrous rates at output stride 16 (`--atrous_rates=6,12,18`); output stride 8 doubles them.
ATROUS_RATES_OS16 = (6, 12, 18)


@dataclass(frozen=True)
class DeepLabConfig:
    """Everything that decides a Mobile DeepLabv3's shape; saved with its weights."""

    arch: str = "mobilenet_v2"
    width_mult: float = 1.0
    divisible_by: int = 8  # DeepLab's TF code rounds widths below 1.0 with 1
    num_classes: int = 21  # PASCAL VOC: background and 20 objects
    in_chans: int = 3
    input_size: int = 513  # DeepLab's crop size; any size the backbone takes runs
    output_stride: int = 16
    aspp: bool = False  # the three 3x3 atrous branches of full ASPP (Table 7's last row)
    head_channels: int = 256
    dropout: float = 0.1  # DeepLab keeps 0.9 of the projection's activations
    padding: Padding = "symmetric"  # "tf_same" for TensorFlow-trained weights
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1

    def __post_init__(self) -> None:
        if self.output_stride not in (8, 16):
            raise ValueError(f"output_stride must be 8 or 16 for DeepLab, got {self.output_stride}")
        if self.num_classes < 1 or self.head_channels < 1:
            raise ValueError("num_classes and head_channels must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        self.backbone()  # the backbone's own checks (arch, width, input size)

    def backbone(self) -> ModelConfig:
        """The MobileNet the model reads, without a classifier."""
        return ModelConfig(
            arch=self.arch, width_mult=self.width_mult, divisible_by=self.divisible_by, num_classes=0,
            in_chans=self.in_chans, input_size=self.input_size, output_stride=self.output_stride,
            padding=self.padding, bn_eps=self.bn_eps, bn_momentum=self.bn_momentum,
        )  # fmt: skip

    @property
    def atrous_rates(self) -> tuple[int, ...]:
        return tuple(rate * 16 // self.output_stride for rate in ATROUS_RATES_OS16) if self.aspp else ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# The registered segmentation models. DeepLab's TF code rounds widths below 1.0 to whole channels, not to 8.
SEGMENTATION_MODELS = {
    "deeplabv3_mobilenet_v2": DeepLabConfig(),
    "deeplabv3_mobilenet_v2_050": DeepLabConfig(width_mult=0.5, divisible_by=1),
    "deeplabv3_mobilenet_v1": DeepLabConfig(arch="mobilenet_v1"),
}
