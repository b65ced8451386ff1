"""MobileNetV1 and MobileNetV2, exact to the papers."""

from mobilenet.deploy import available_backends, deploy, load_deployed
from mobilenet.model import FeatureInfo, MobileNet, MobileNetFeatures, ModelConfig
from mobilenet.optimize import optimize
from mobilenet.registry import create_model, list_models, mobilenet_v1, mobilenet_v2

__all__ = [
    "FeatureInfo",
    "MobileNet",
    "MobileNetFeatures",
    "ModelConfig",
    "available_backends",
    "create_model",
    "deploy",
    "list_models",
    "load_deployed",
    "mobilenet_v1",
    "mobilenet_v2",
    "optimize",
]
__version__ = "0.1.0"
