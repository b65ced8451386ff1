"""A network's settings as one frozen record (saved with its weights), and the layer style it implies.

Torch-free on purpose: the command line lists and validates models without importing PyTorch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from mobilenet.nn.tables import ARCHITECTURES

if TYPE_CHECKING:
    import torch

Activation = Literal["relu6", "relu"]
Padding = Literal["symmetric", "tf_same"]
# Where V2's residual joins (Figure 6b): the bottlenecks (the paper's design), the expansions, or nowhere.
Shortcut = Literal["bottleneck", "expansion", "none"]
SHORTCUTS: tuple[Shortcut, ...] = ("bottleneck", "expansion", "none")
MIN_INPUT_SIZE = 32  # the network downsamples 32x: a smaller input leaves less than one pixel
MOBILENET = "mobilenet"  # the kind that weights files of a MobileNet classifier (or backbone) say they hold


@dataclass(frozen=True)
class LayerStyle:
    """How every conv + norm + activation of a network is made: the switches users flip."""

    activation: Activation = "relu6"
    padding: Padding = "symmetric"
    bn_eps: float = 1e-5  # TensorFlow-trained weights use 1e-3
    bn_momentum: float = 0.1  # PyTorch convention: TF's decay 0.997 is momentum 0.003


@dataclass(frozen=True)
class ModelConfig:
    """Everything that decides a network's shape and behaviour; saved with its weights."""

    arch: str = "mobilenet_v2"
    width_mult: float = 1.0  # alpha: channels scaled and rounded to multiples of ``divisible_by``
    # 8 in the papers' classifiers (TF-slim, torchvision); DeepLab's TF code rounds with 1 (alpha 0.5: 24 -> 12).
    divisible_by: int = 8
    num_classes: int = 1000
    in_chans: int = 3
    input_size: int = 224  # the resolution it was made for (rho x 224); any size >= 32 runs
    classifier: Literal["linear", "conv"] = "linear"  # dropout + linear (torchvision) or a 1x1 conv
    dropout: float = 0.2
    activation: Activation = "relu6"
    linear_bottleneck: bool = True  # False: the paper's ablation with an activation on the projection
    shortcut: Shortcut = "bottleneck"  # "expansion" or "none": the paper's ablations (True/False read as before)
    padding: Padding = "symmetric"  # "tf_same" for TensorFlow-trained weights
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1
    output_stride: int = 32  # 8 or 16 trade the last strides for dilation (segmentation, detection)
    small_input: bool = False  # stem and first strided stage at stride 1 (total stride 8): for 32x32 images
    # timm's deeper V2s: each stage's repeats times depth_mult, rounded up, the first and last stages kept
    # (mobilenetv2_110d: 1.2, mobilenetv2_120d: 1.4), with the stem and head at 32 and 1280 whatever the width.
    depth_mult: float = 1.0
    fixed_stem_head: bool = False
    head_conv: bool = False  # V1 with a last 1x1 conv of its width (1024 at 1.0) before pooling: timm's "_100h"

    def __post_init__(self) -> None:
        if isinstance(self.shortcut, bool):  # the switch was a bool before the expansion ablation existed
            object.__setattr__(self, "shortcut", "bottleneck" if self.shortcut else "none")
        if self.shortcut not in SHORTCUTS:
            raise ValueError(f"shortcut must be one of {', '.join(SHORTCUTS)}, got {self.shortcut!r}")
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"unknown arch {self.arch!r}: choose one of {sorted(ARCHITECTURES)}")
        if not (isinstance(self.width_mult, int | float) and math.isfinite(self.width_mult)) or (self.width_mult <= 0):
            raise ValueError(f"width_mult must be a number > 0 (0.35 to 1.4 are published), got {self.width_mult}")
        if isinstance(self.divisible_by, bool) or not isinstance(self.divisible_by, int) or self.divisible_by < 1:
            raise ValueError(f"divisible_by must be a whole number >= 1 (8 and 1 are used), got {self.divisible_by}")
        if self.output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {self.output_stride}")
        if self.input_size < self.min_input_size:
            raise ValueError(f"input_size must be at least {self.min_input_size}, got {self.input_size}")
        if self.num_classes < 0 or self.in_chans < 1:
            raise ValueError("num_classes must be >= 0 (0: no classifier) and in_chans >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not (isinstance(self.depth_mult, int | float) and math.isfinite(self.depth_mult)) or self.depth_mult < 1:
            raise ValueError(f"depth_mult must be a number >= 1 (timm's 1.2 and 1.4), got {self.depth_mult}")
        if self.arch == "mobilenet_v1" and self.depth_mult != 1:
            raise ValueError("depth_mult scales MobileNetV2's stages: MobileNetV1's table has none to scale")
        if self.arch == "mobilenet_v2" and self.head_conv:
            raise ValueError("head_conv adds MobileNetV1 a last 1x1 conv: MobileNetV2 has its own (1280)")
        if self.classifier not in ("linear", "conv"):
            raise ValueError(f"classifier must be 'linear' or 'conv', got {self.classifier!r}")

    @property
    def min_input_size(self) -> int:
        """The smallest input that still leaves one pixel at the network's last stage."""
        return MIN_INPUT_SIZE // 4 if self.small_input else MIN_INPUT_SIZE

    @property
    def style(self) -> LayerStyle:
        return LayerStyle(self.activation, self.padding, self.bn_eps, self.bn_momentum)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def check_input(self, x: torch.Tensor) -> None:
        """Fail early, with the fix, on a batch the network cannot take."""
        if x.dim() != 4 or x.shape[1] != self.in_chans:
            raise ValueError(f"expected a batch of shape (N, {self.in_chans}, H, W), got {tuple(x.shape)}")
        if min(x.shape[-2:]) < self.min_input_size:
            size = self.min_input_size
            raise ValueError(
                f"input {x.shape[-2]}x{x.shape[-1]} is too small for {self.arch}: it downsamples {size}x, "
                f"so resize images to at least {size}x{size}"
            )
