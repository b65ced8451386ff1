"""The published widths of each architecture, by name (timm's spelling: mobilenet_v2_100 = alpha 1.0)."""

from __future__ import annotations

from mobilenet.nn.config import ModelConfig

WIDTHS = {
    "mobilenet_v2": (0.35, 0.5, 0.75, 1.0, 1.3, 1.4),
    "mobilenet_v1": (0.25, 0.5, 0.75, 1.0),
}
MODELS: dict[str, ModelConfig] = {
    f"{arch}_{round(width * 100):03d}": ModelConfig(arch=arch, width_mult=width)
    for arch, widths in WIDTHS.items()
    for width in widths
}
MODELS["mobilenet_v2"] = MODELS["mobilenet_v2_100"]
MODELS["mobilenet_v1"] = MODELS["mobilenet_v1_100"]
# timm's variants of other depth or head (mobilenetv2_110d, mobilenetv2_120d, mobilenetv1_100h), its most accurate.
MODELS["mobilenet_v2_110d"] = ModelConfig(width_mult=1.1, depth_mult=1.2, fixed_stem_head=True)
MODELS["mobilenet_v2_120d"] = ModelConfig(width_mult=1.2, depth_mult=1.4, fixed_stem_head=True)
MODELS["mobilenet_v1_100h"] = ModelConfig(arch="mobilenet_v1", head_conv=True)


def model_name(config: ModelConfig) -> str:
    """The registered name of a config's architecture and width (``mobilenet_v2_050``), "d" marking a deeper
    variant and "h" a head conv, as timm names them."""
    suffix = "d" if config.depth_mult != 1 else "h" if config.head_conv else ""
    return f"{config.arch}_{round(config.width_mult * 100):03d}{suffix}"
