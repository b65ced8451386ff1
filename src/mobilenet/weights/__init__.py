"""Weights in and out: our safetensors format with its metadata, torchvision/timm state dicts, TFLite files."""

from mobilenet.weights.format import Checkpoint, ModelInfo, model_metadata, parse_metadata, save_weights
from mobilenet.weights.load import load_model, load_state_dict, read_checkpoint

__all__ = [
    "Checkpoint",
    "ModelInfo",
    "load_model",
    "load_state_dict",
    "model_metadata",
    "parse_metadata",
    "read_checkpoint",
    "save_weights",
]
