"""Named models: ``create_model`` and ``list_models`` (timm-like) and torchvision-style builders."""

from __future__ import annotations

import fnmatch
from dataclasses import replace
from pathlib import Path
from typing import Any

from mobilenet.data.imagenet import imagenet_names_for
from mobilenet.detection.config import DETECTION_MODELS
from mobilenet.detection.load import load_detector
from mobilenet.detection.model import SSD
from mobilenet.nn.features import FeatureLocation, MobileNetFeatures
from mobilenet.nn.model import MobileNet
from mobilenet.nn.variants import MODELS, model_name
from mobilenet.segmentation.config import SEGMENTATION_MODELS
from mobilenet.segmentation.load import load_deeplab
from mobilenet.segmentation.model import DeepLabV3
from mobilenet.weights.download import fetch
from mobilenet.weights.load import load_model
from mobilenet.weights.published import PUBLISHED, WEIGHTS, published_weights

# What a weights file is called: anything else without a "/" that does not exist is taken for a name.
FILE_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".tflite", ".xml", ".onnx")


def list_models(pattern: str = "*", pretrained: bool = False) -> list[str]:
    """Registered model names matching a shell-style ``pattern`` (``"mobilenet_v2_*"``).

    ``pretrained=True``: the names of the published weights instead (``"mobilenet_v2_100.tv2_in1k"``), as
    ``create_model(model, weights=name)`` takes them.
    """
    if pretrained:
        names = (entry.name for entry in PUBLISHED if entry.task != "detection")
        return sorted(name for name in names if fnmatch.fnmatch(name, pattern))
    return sorted(name for name in (*MODELS, *SEGMENTATION_MODELS, *DETECTION_MODELS) if fnmatch.fnmatch(name, pattern))


def is_weights_name(weights: str | Path) -> bool:
    """Whether ``weights`` names published weights ("DEFAULT", "mobilenet_v2_100.tv2_in1k") rather than a file."""
    text = str(weights)
    if text == "DEFAULT" or text in WEIGHTS:
        return True
    return not (Path(text).exists() or "/" in text or Path(text).suffix in FILE_SUFFIXES)


def create_model(
    name: str,
    weights: str | Path | None = None,
    features_only: bool = False,
    out_indices: tuple[int, ...] | None = None,
    feature_location: FeatureLocation = "bottleneck",
    pretrained: bool = False,
    progress: bool = True,
    **overrides: Any,
) -> MobileNet | MobileNetFeatures | DeepLabV3 | SSD:
    """Build a registered model, with any :class:`~mobilenet.nn.config.ModelConfig` field overridden.

    ``weights`` is a local file (safetensors, a torchvision/timm ``.pth`` state dict, or a TFLite
    MobileNet), whose architecture settings are used and its tensors loaded, checked key by key; or the
    name of published weights (``list_models(pretrained=True)``, ``"DEFAULT"``, or ``pretrained=True``),
    fetched into the cache once, checked against its sha256, with its preprocessing.
    ``features_only=True`` returns feature maps instead of logits: at ``out_indices`` of the taps of
    ``feature_location`` ("bottleneck": block outputs; "expansion": inside blocks, as SSDLite reads).
    Segmentation models (``deeplabv3_mobilenet_v2``, ...) take :class:`DeepLabConfig` fields and DeepLab weights;
    detectors (``ssdlite_mobilenet_v2``, ...) take :class:`SSDConfig` fields and SSD weights.
    """
    if name not in MODELS and name not in SEGMENTATION_MODELS and name not in DETECTION_MODELS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    if pretrained and weights is None:
        weights = "DEFAULT"
    if name in SEGMENTATION_MODELS:
        if features_only:
            raise ValueError(f"{name} is a segmentation model: features_only applies to the MobileNet classifiers")
        return create_segmentation_model(name, weights, progress, **overrides)
    if name in DETECTION_MODELS:
        if features_only or (weights is not None and is_weights_name(weights)):
            raise ValueError(f"{name} is a detector: pass a weights file (no published detector is registered)")
        return (
            load_detector(weights, **overrides)
            if weights is not None
            else SSD(replace(DETECTION_MODELS[name], **overrides))
        )
    if weights is not None and is_weights_name(weights):
        width = overrides.get("width_mult", MODELS[name].width_mult)
        entry = published_weights(model_name(replace(MODELS[name], width_mult=width)), str(weights))
        model = load_model(fetch(entry, progress), MODELS[name], **overrides)
        model.preprocessing = entry.preprocessing
        model.class_names = model.class_names or imagenet_names_for(model.num_classes)  # a cached file has no labels
    elif weights is not None:
        model = load_model(weights, MODELS[name], **overrides)
    else:
        model = MobileNet(replace(MODELS[name], **overrides))
    return MobileNetFeatures(model, out_indices, feature_location) if features_only else model


def create_segmentation_model(
    name: str, weights: str | Path | None = None, progress: bool = True, **overrides: Any
) -> DeepLabV3:
    """A registered Mobile DeepLabv3: new, from a file (Coral's ``.tflite``, our ``.safetensors``) or a weights name."""
    if weights is not None and is_weights_name(weights):
        return load_deeplab(fetch(published_weights(name, str(weights)), progress), **overrides)
    if weights is not None:
        return load_deeplab(weights, **overrides)
    return DeepLabV3(replace(SEGMENTATION_MODELS[name], **overrides))


def ssdlite_mobilenet_v2(weights: str | Path | None = None, num_classes: int = 91, **kwargs: Any) -> SSD:
    """SSDLite on MobileNetV2 (the paper's Table 6), ``num_classes`` counting the background column."""
    if weights is not None:
        return create_model("ssdlite_mobilenet_v2", weights, **kwargs)  # type: ignore[return-value]
    return create_model("ssdlite_mobilenet_v2", num_classes=num_classes, **kwargs)  # type: ignore[return-value]


def ssdlite_mobilenet_v1(weights: str | Path | None = None, num_classes: int = 91, **kwargs: Any) -> SSD:
    """SSDLite on MobileNetV1 (the paper's Table 6), as :func:`ssdlite_mobilenet_v2`."""
    if weights is not None:
        return create_model("ssdlite_mobilenet_v1", weights, **kwargs)  # type: ignore[return-value]
    return create_model("ssdlite_mobilenet_v1", num_classes=num_classes, **kwargs)  # type: ignore[return-value]


def mobilenet_v2(
    weights: str | Path | None = None, width_mult: float = 1.0, num_classes: int = 1000, **kwargs: Any
) -> MobileNet:
    """MobileNetV2 with torchvision's signature (``weights``: a file, a published name or "DEFAULT")."""
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
