"""MobileNetV1 and MobileNetV2, exact to the papers."""

from mobilenet.model import FeatureInfo, MobileNet, MobileNetFeatures, ModelConfig
from mobilenet.registry import create_model, list_models, mobilenet_v1, mobilenet_v2

__all__ = [
    "FeatureInfo",
    "MobileNet",
    "MobileNetFeatures",
    "ModelConfig",
    "create_model",
    "list_models",
    "mobilenet_v1",
    "mobilenet_v2",
]
__version__ = "0.1.0"
