"""Segmentation models by name and from files: Google's DeepLab TFLite files, our safetensors, classifier backbones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mobilenet.segmentation.config import KIND
from mobilenet.segmentation.model import DeepLabV3
from mobilenet.segmentation.tflite import import_deeplab_tflite
from mobilenet.weights.format import read_kind
from mobilenet.weights.load import load_task_model, rebuilt, task_model_from_classifier
from mobilenet.weights.tflite import read_tflite


def load_deeplab(path: str | Path, emulate_int8: bool = False, **overrides: Any) -> DeepLabV3:
    """A :class:`DeepLabV3` from a Coral/TensorFlow DeepLab ``.tflite`` or a ``.safetensors`` of ours.

    ``overrides`` change fields that keep the weights' shapes (``output_stride``, ``dropout``, ``input_size``).
    ``emulate_int8`` (a quantized ``.tflite``): round activations as Google's runtime does, to agree with it.
    """
    path = Path(path)
    if path.suffix == ".tflite" and path.is_file():
        net = read_tflite(path)
        if not net.dense_head:
            raise ValueError(not_segmentation(path))
        if overrides and emulate_int8:
            raise ValueError("emulate_int8 runs the file as it is: drop the config overrides")
        model = import_deeplab_tflite(path, net, emulate_int8)
        return rebuilt(model, overrides) if overrides else model
    if emulate_int8:
        raise ValueError(f"{path} is float weights: emulate_int8 applies to quantized .tflite files")
    return load_task_model(path, DeepLabV3, KIND, "a Mobile DeepLabv3", not_segmentation(path), **overrides)


def is_segmentation_file(path: str | Path) -> bool:
    """Whether a weights file holds a segmentation model (a DeepLab TFLite file, or our file of that kind)."""
    path = Path(path)
    if path.suffix == ".tflite" and path.is_file():
        return read_tflite(path).dense_head
    if path.suffix == ".safetensors" and path.is_file():
        return read_kind(path) == KIND
    return False


def not_segmentation(path: str | Path) -> str:
    return (
        f"{path} holds a MobileNet classifier, not a segmentation model: pass DeepLab weights (Coral's "
        "deeplabv3_*.tflite or a trained deeplabv3 .safetensors), or fine-tune one from it (--init)"
    )


def deeplab_from_classifier(path: str | Path, **overrides: Any) -> DeepLabV3:
    """A :class:`DeepLabV3` on the backbone of a MobileNet classifier (any file the library loads): fine-tuning's start.

    The backbone's architecture, width, padding and BatchNorm epsilon are the file's; the head is new, and so is
    anything in ``overrides`` (``num_classes``, ``output_stride``, ...). The classifier and V2's 1280 conv, which
    DeepLab does not read, are left behind.
    """
    return task_model_from_classifier(path, DeepLabV3, **overrides)
