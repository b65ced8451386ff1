"""MobileNetV1 and MobileNetV2, exact to the papers.

The public names load on first use, so that ``import mobilenet`` (and ``mobilenet --help``) stays as
fast as the part of the library actually used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "DeepLabConfig": "mobilenet.segmentation.config",
    "DeepLabV3": "mobilenet.segmentation.model",
    "FeatureInfo": "mobilenet.nn.features",
    "FeatureTap": "mobilenet.nn.features",
    "ImageTransform": "mobilenet.data.images",
    "MobileNet": "mobilenet.nn.model",
    "MobileNetFeatures": "mobilenet.nn.features",
    "ModelConfig": "mobilenet.nn.config",
    "Preprocessing": "mobilenet.nn.preprocessing",
    "SSD": "mobilenet.detection.model",
    "SSDConfig": "mobilenet.detection.config",
    "available_backends": "mobilenet.inference.backends",
    "classify": "mobilenet.classification.predict",
    "create_model": "mobilenet.registry",
    "decode_predictions": "mobilenet.classification.predict",
    "deploy": "mobilenet.inference.deploy",
    "detect": "mobilenet.detection.predict",
    "list_models": "mobilenet.registry",
    "load": "mobilenet.registry",
    "load_deployed": "mobilenet.registry",
    "make_config": "mobilenet.tasks",
    "mobilenet_v1": "mobilenet.classification.load",
    "mobilenet_v2": "mobilenet.classification.load",
    "optimize": "mobilenet.inference.optimize",
    "segment": "mobilenet.segmentation.predict",
    "ssdlite_mobilenet_v1": "mobilenet.detection.load",
    "ssdlite_mobilenet_v2": "mobilenet.detection.load",
    "train": "mobilenet.tasks",
}
__all__ = [
    "SSD",
    "DeepLabConfig",
    "DeepLabV3",
    "FeatureInfo",
    "FeatureTap",
    "ImageTransform",
    "MobileNet",
    "MobileNetFeatures",
    "ModelConfig",
    "Preprocessing",
    "SSDConfig",
    "available_backends",
    "classify",
    "create_model",
    "decode_predictions",
    "deploy",
    "detect",
    "list_models",
    "load",
    "load_deployed",
    "make_config",
    "mobilenet_v1",
    "mobilenet_v2",
    "optimize",
    "segment",
    "ssdlite_mobilenet_v1",
    "ssdlite_mobilenet_v2",
    "train",
]

if TYPE_CHECKING:
    from mobilenet.classification.load import mobilenet_v1, mobilenet_v2
    from mobilenet.classification.predict import classify, decode_predictions
    from mobilenet.data.images import ImageTransform
    from mobilenet.detection.config import SSDConfig
    from mobilenet.detection.load import ssdlite_mobilenet_v1, ssdlite_mobilenet_v2
    from mobilenet.detection.model import SSD
    from mobilenet.detection.predict import detect
    from mobilenet.inference.backends import available_backends
    from mobilenet.inference.deploy import deploy
    from mobilenet.inference.optimize import optimize
    from mobilenet.nn.config import ModelConfig
    from mobilenet.nn.features import FeatureInfo, FeatureTap, MobileNetFeatures
    from mobilenet.nn.model import MobileNet
    from mobilenet.nn.preprocessing import Preprocessing
    from mobilenet.registry import create_model, list_models, load, load_deployed
    from mobilenet.segmentation.config import DeepLabConfig
    from mobilenet.segmentation.model import DeepLabV3
    from mobilenet.segmentation.predict import segment
    from mobilenet.tasks import make_config, train


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mobilenet' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # the next access is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
