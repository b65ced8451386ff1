"""Named models: ``create_model`` and ``list_models`` (timm-like) and torchvision-style builders."""

from __future__ import annotations

import fnmatch
from dataclasses import replace
from pathlib import Path
from typing import Any

from mobilenet.nn.features import FeatureLocation, MobileNetFeatures
from mobilenet.nn.model import MobileNet
from mobilenet.nn.variants import MODELS
from mobilenet.weights.load import load_model


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style ``pattern`` (``"mobilenet_v2_*"``)."""
    return sorted(name for name in MODELS if fnmatch.fnmatch(name, pattern))


def create_model(
    name: str,
    weights: str | Path | None = None,
    features_only: bool = False,
    out_indices: tuple[int, ...] | None = None,
    feature_location: FeatureLocation = "bottleneck",
    **overrides: Any,
) -> MobileNet | MobileNetFeatures:
    """Build a registered model, with any :class:`~mobilenet.nn.config.ModelConfig` field overridden.

    ``weights`` is a local file (safetensors, a torchvision/timm ``.pth`` state dict, or a TFLite
    MobileNet): its architecture settings are used and its tensors loaded, checked key by key.
    ``features_only=True`` returns feature maps instead of logits: at ``out_indices`` of the taps of
    ``feature_location`` ("bottleneck": block outputs; "expansion": inside blocks, as SSDLite reads).
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    if weights is not None:
        model = load_model(weights, MODELS[name], **overrides)
    else:
        model = MobileNet(replace(MODELS[name], **overrides))
    return MobileNetFeatures(model, out_indices, feature_location) if features_only else model


def mobilenet_v2(
    weights: str | Path | None = None, width_mult: float = 1.0, num_classes: int = 1000, **kwargs: Any
) -> MobileNet:
    """MobileNetV2 with torchvision's signature (``weights`` is a local file here)."""
    return create_model(  # type: ignore[return-value]
        "mobilenet_v2", weights, width_mult=width_mult, num_classes=num_classes, **kwargs
    )


def mobilenet_v1(
    weights: str | Path | None = None, width_mult: float = 1.0, num_classes: int = 1000, **kwargs: Any
) -> MobileNet:
    """MobileNetV1 in the same style as :func:`mobilenet_v2`."""
    return create_model(  # type: ignore[return-value]
        "mobilenet_v1", weights, width_mult=width_mult, num_classes=num_classes, **kwargs
    )
