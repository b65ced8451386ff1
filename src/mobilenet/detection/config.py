"""An SSD detector's settings as one frozen record (saved with its weights), and the registered detectors.

The defaults are TensorFlow's Object Detection API ``ssdlite_mobilenet_v2_coco.config`` (2018): a MobileNetV2
read inside its 14th inverted residual (576 channels at stride 16) and at its 1280-channel conv, four extra
layers to 512/256/256/128 channels, 3x3 depthwise + 1x1 prediction layers, six anchor layers at scales 0.2 to
0.95. ``separable=False`` with ``predictor_kernel=1`` is the regular SSD of ``ssd_mobilenet_v1_coco.config``.
Also the detection task's own training settings and recipe. Torch-free, as :mod:`mobilenet.nn.config` is: the
command line lists and validates models without PyTorch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from mobilenet.nn.config import ModelConfig, Padding
from mobilenet.training.config import TrainConfig, refuse, setting

TASK = "detection"
KIND = "ssd"  # what our weights files of this model say they hold
# What `mobilenet detect --out DIR` writes per image: the image with its boxes drawn ({name}: the image's stem,
# made distinct where stems repeat).
OUTPUTS = ("{name}_detections.png",)

# Where each architecture's maps are read (``feature_location``), one map per stride. TF's configs read strides 16
# and 32: V2's ``layer_15/expansion_output`` (576 channels) and ``layer_19`` (the 1280 conv); V1's
# ``Conv2d_11_pointwise`` and ``Conv2d_13_pointwise``. At stride 8: V2's ``layer_7/expansion_output`` (192), V1's
# ``Conv2d_5_pointwise`` (256).
BACKBONE_LOCATIONS = {"mobilenet_v2": "expansion", "mobilenet_v1": "bottleneck"}
BACKBONE_STRIDES = (8, 16, 32)  # the strides a detector may read; the extra layers follow the last


@dataclass(frozen=True)
class SSDConfig:
    """Everything that decides an SSD's shape, anchors and post-processing; saved with its weights."""

    arch: str = "mobilenet_v2"
    width_mult: float = 1.0  # alpha: scales the backbone and the extra layers (never below ``min_depth``)
    num_classes: int = 91  # output columns, background (column 0) included: COCO's 90 ids + 1
    in_chans: int = 3
    input_size: int = 320  # Table 6 counts at 320; Google's COCO files take 300
    separable: bool = True  # SSDLite: depthwise-separable extra and prediction layers; False: SSD's regular convs
    predictor_kernel: int = 3  # the prediction layers' spatial kernel (ssd_mobilenet_v1_coco.config uses 1)
    extra_depths: tuple[int, ...] = (512, 256, 256, 128)  # the extra layers after the backbone (strides 64..512)
    min_depth: int = 16
    # The shallowest backbone map the heads read, by its stride: TF's 16, or 8 (a map of twice the resolution,
    # one more anchor layer) for objects a few cells of stride 16 wide.
    lowest_layer_stride: int = 16
    # Anchors (TF's ssd_anchor_generator): scales spread linearly over the layers, five aspect ratios, and one box
    # of scale sqrt(s_i * s_i+1) per cell; TF's lowest layer has three boxes only (reduce_boxes_in_lowest_layer).
    min_scale: float = 0.2
    max_scale: float = 0.95
    aspect_ratios: tuple[float, ...] = (1.0, 2.0, 0.5, 3.0, 0.3333)
    reduce_boxes_in_lowest_layer: bool = True
    box_coder_scales: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0)  # ty, tx, th, tw
    # Post-processing: sigmoid scores, per-class NMS.
    score_threshold: float = 1e-8
    iou_threshold: float = 0.6
    max_detections: int = 100
    max_per_class: int = 100
    nms: Literal["regular", "fast"] = "regular"  # TF's per-class NMS, or TF Lite's class-agnostic one (its files')
    padding: Padding = "symmetric"  # "tf_same" for TensorFlow-trained weights
    bn_eps: float = 1e-3  # TensorFlow's, as the config says
    bn_momentum: float = 0.1  # PyTorch's; TF's configs train with decay 0.9997 (momentum 0.0003) for 200k steps

    def __post_init__(self) -> None:
        if self.arch not in BACKBONE_LOCATIONS:
            raise ValueError(f"SSD reads {' or '.join(BACKBONE_LOCATIONS)}, not {self.arch!r}")
        if self.lowest_layer_stride not in BACKBONE_STRIDES:
            strides = ", ".join(map(str, BACKBONE_STRIDES))
            raise ValueError(f"lowest_layer_stride must be one of {strides}, got {self.lowest_layer_stride}")
        if self.num_classes < 2:
            raise ValueError(f"num_classes counts the background column too: at least 2, got {self.num_classes}")
        if self.predictor_kernel not in (1, 3):
            raise ValueError(f"predictor_kernel must be 1 or 3, got {self.predictor_kernel}")
        if not 0.0 < self.min_scale < self.max_scale <= 1.0:
            raise ValueError(
                f"anchor scales need 0 < min_scale < max_scale <= 1, got {self.min_scale}, {self.max_scale}"
            )
        if not 0.0 < self.iou_threshold <= 1.0 or self.max_detections < 1 or self.max_per_class < 1:
            raise ValueError("iou_threshold must be in (0, 1], max_detections and max_per_class >= 1")
        if self.nms not in ("regular", "fast"):
            raise ValueError(f"nms must be 'regular' (TF's per-class NMS) or 'fast' (TF Lite's), got {self.nms!r}")
        object.__setattr__(self, "extra_depths", tuple(self.extra_depths))
        object.__setattr__(self, "aspect_ratios", tuple(self.aspect_ratios))
        object.__setattr__(self, "box_coder_scales", tuple(self.box_coder_scales))
        self.backbone()  # the backbone's own checks (width, input size)

    def backbone(self) -> ModelConfig:
        """The MobileNet the detector reads, without a classifier."""
        return ModelConfig(
            arch=self.arch, width_mult=self.width_mult, num_classes=0, in_chans=self.in_chans,
            input_size=self.input_size, padding=self.padding, bn_eps=self.bn_eps, bn_momentum=self.bn_momentum,
        )  # fmt: skip

    def depth(self, channels: int) -> int:
        """An extra layer's width: TF's ``max(int(channels * alpha), min_depth)``."""
        return max(int(channels * self.width_mult), self.min_depth)

    @property
    def tap_strides(self) -> tuple[int, ...]:
        """The strides of the backbone maps the heads read, shallowest first: (16, 32) as TF's configs read them."""
        return tuple(stride for stride in BACKBONE_STRIDES if stride >= self.lowest_layer_stride)

    @property
    def num_layers(self) -> int:
        """Feature maps that predict: the backbone's taps and the extra layers."""
        return len(self.tap_strides) + len(self.extra_depths)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# The registered detectors. Table 6's rows: MobileNetV2 + SSDLite and MobileNetV1 + SSDLite, at 320.
DETECTION_MODELS = {
    "ssdlite_mobilenet_v2": SSDConfig(),
    "ssdlite_mobilenet_v1": SSDConfig(arch="mobilenet_v1"),
    "ssd_mobilenet_v1": SSDConfig(arch="mobilenet_v1", separable=False, predictor_kernel=1, input_size=300),
}


@dataclass(frozen=True)
class DetectionSettings:
    """What only a detector's training uses: the anchors it predicts from and how boxes are matched to them; the rest
    is :class:`~mobilenet.training.config.TrainConfig`'s (its ``input_size`` is the square input, Table 6's 320)."""

    min_scale: float | None = setting(None, "the smallest anchor scale, a fraction of the image (none: the model's, "
                                      "TF's 0.2)")  # fmt: skip
    max_scale: float | None = setting(None, "the largest anchor scale (none: the model's, TF's 0.95)")
    reduce_boxes_in_lowest_layer: bool | None = setting(
        None, "TF's three boxes per cell in the lowest layer: 0.1 at 1:1 and min-scale at 2:1 and 1:2; false: every "
        "aspect ratio at min-scale, as the other layers have theirs (none: the model's, true)")  # fmt: skip
    lowest_layer_stride: int | None = setting(
        None, "the stride of the shallowest backbone map the heads read: 16 (TF's), or 8 for small objects (twice the "
        "resolution, one more layer of heads) (none: the model's; a detector's weights keep their own)")  # fmt: skip
    match_threshold: float = setting(0.5, "the IoU at which an anchor matches a box (each box also takes its best "
                                     "anchor)")  # fmt: skip
    negatives_per_positive: float = setting(3.0, "hard-example mining: background anchors counted per matched one")
    min_negatives: int = setting(3, "hard-example mining: background anchors counted per image at least")

    def __post_init__(self) -> None:
        problems = [
            (not 0 < self.match_threshold <= 1, "match-threshold must be in (0, 1]"),
            (self.negatives_per_positive < 0 or self.min_negatives < 0,
             "negatives-per-positive and min-negatives must be >= 0"),
            (self.lowest_layer_stride not in (None, *BACKBONE_STRIDES),
             f"lowest-layer-stride must be one of {', '.join(map(str, BACKBONE_STRIDES))}"),
        ]  # fmt: skip
        refuse(problems)

    def model_overrides(self) -> dict[str, Any]:
        """The anchors and feature maps set here, as :class:`SSDConfig` overrides (the scales keep the weights'
        shapes; the lowest layer's boxes and stride change its heads)."""
        names = ("min_scale", "max_scale", "reduce_boxes_in_lowest_layer", "lowest_layer_stride")
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}


# SSDLite (Sandler et al. 2018, section 6.2) fine-tuned from an ImageNet backbone in the few hundred steps a CPU
# affords: AdamW at lr 1e-3 for the new layers and 0.3 of it for the pretrained backbone, a warm-up epoch, cosine
# decay, weight decay 4e-5, no label smoothing (sigmoid scores). BatchNorm keeps the statistics its weights gave
# (TFLite backbones have it folded away, and CPU batches are small); new layers' norms learn theirs. On BCCD, SGD
# with momentum learned nothing in 5 epochs at torchvision's SSDLite rate (0.025 per 32) and diverged at 4x it,
# where AdamW reached AP50 0.26 in 4. AdamW at the full rate on the backbone too moved some of its layers by half
# their norm and left its stride-32 layers' ReLU6 stuck at 0 or 6 on every image; on one seed of three every
# channel of the last layer, so that the maps above it saw nothing and the white cells went unlearned (59%
# mAP@0.5). A tenth of the rate kept those layers alive but left the backbone's stride-16 features unadapted
# (platelets 52% AP50 against 77%). At 0.3 each seed learns every class, for platelets' AP50 10 points under the
# full rate's good seeds (BENCHMARKS.md, benchmarks/detection_saturation.py). TF's own config (RMSProp, 200k steps
# of 24 on COCO) is for training from scratch on a cluster.
RECIPES = {
    "ssdlite": TrainConfig(
        recipe="ssdlite", task=TASK, optimizer="adamw", lr=0.001, backbone_lr_mult=0.3, schedule="cosine",
        warmup_epochs=1.0, weight_decay=4e-5, freeze_bn=True, epochs=60, batch_size=16, input_size=320,
    ),
}  # fmt: skip
