"""Mobile DeepLabv3 by name and from files: Google's DeepLab TFLite files, our safetensors, published weights by name,
and a new head on a classifier's backbone (fine-tuning's start)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from mobilenet.segmentation.config import KIND, SEGMENTATION_MODELS
from mobilenet.segmentation.huggingface import import_transformers_deeplab, is_transformers_deeplab
from mobilenet.segmentation.model import DeepLabV3
from mobilenet.segmentation.published import PUBLISHED
from mobilenet.segmentation.tf_deeplab import import_tf_deeplab, is_tf_deeplab
from mobilenet.segmentation.tflite import import_deeplab_tflite
from mobilenet.weights.download import fetch
from mobilenet.weights.format import read_kind
from mobilenet.weights.load import check_emulation, load_task_file, rebuilt, task_model_from_classifier
from mobilenet.weights.published import find_weights, is_weights_name
from mobilenet.weights.tflite import read_tflite


def load_deeplab(path: str | Path, emulate_int8: bool = False, **overrides: Any) -> DeepLabV3:
    """A :class:`DeepLabV3` from a Coral/TensorFlow DeepLab ``.tflite``, a ``.safetensors`` of ours, a Hugging Face
    transformers folder of ``MobileNetV2ForSemanticSegmentation``, or TensorFlow DeepLab's checkpoint or
    ``frozen_inference_graph.pb``.

    ``overrides`` change fields that keep the weights' shapes (``output_stride``, ``dropout``, ``input_size``).
    ``emulate_int8`` (a quantized ``.tflite``): round activations as Google's runtime does, to agree with it.
    """

    def imported(file: Path, int8: bool) -> DeepLabV3:
        return import_deeplab_tflite(file, None, int8)

    if emulate_int8:
        check_emulation(Path(path), overrides)
    for owns, read in ((is_transformers_deeplab, import_transformers_deeplab), (is_tf_deeplab, import_tf_deeplab)):
        if owns(path):
            model = read(path)
            return rebuilt(model, overrides) if overrides else model
    return load_task_file(
        path, DeepLabV3, {".tflite": imported}, is_deeplab_file, not_segmentation(path), emulate_int8, **overrides
    )


def is_deeplab_file(path: str | Path) -> bool:
    """Whether a weights file holds a Mobile DeepLabv3: a TFLite file whose head reads the feature map (convolutions
    after the global pooling that are not on the pooled vector), our safetensors of its kind, a transformers
    folder of one, or TensorFlow DeepLab's checkpoint or frozen graph."""
    path = Path(path)
    if is_transformers_deeplab(path) or is_tf_deeplab(path):
        return True
    if path.suffix == ".tflite" and path.is_file():
        return read_tflite(path).dense_head
    return path.suffix == ".safetensors" and path.is_file() and read_kind(path) == KIND


def not_segmentation(path: str | Path) -> str:
    return (
        f"{path} holds no Mobile DeepLabv3: pass DeepLab weights (Coral's deeplabv3_*.tflite, DeepLab's frozen graph "
        f"or checkpoint, or a .safetensors of the {KIND} kind); a classifier's weights start one, its backbone under "
        "a new head (deeplab_from_classifier)"
    )


def create_deeplab(
    name: str, weights: str | Path | None = None, progress: bool = True, emulate_int8: bool = False, **overrides: Any
) -> DeepLabV3:
    """A registered Mobile DeepLabv3: new, from a file (Coral's ``.tflite``, our ``.safetensors``) or a weights name
    (``emulate_int8`` as :func:`load_deeplab` takes it)."""
    if weights is not None and is_weights_name(weights):
        weights = fetch(find_weights(PUBLISHED, name, str(weights)), progress)
    if weights is not None:
        return load_deeplab(weights, emulate_int8, **overrides)
    return DeepLabV3(replace(SEGMENTATION_MODELS[name], **overrides))


def deeplab_from_classifier(path: str | Path, **overrides: Any) -> DeepLabV3:
    """A :class:`DeepLabV3` on the backbone of a MobileNet classifier (any file the library loads): fine-tuning's start.

    The backbone's architecture, width, padding and BatchNorm epsilon are the file's; the head is new, and so is
    anything in ``overrides`` (``num_classes``, ``output_stride``, ...). The classifier and V2's 1280 conv, which
    DeepLab does not read, are left behind.
    """
    return task_model_from_classifier(path, DeepLabV3, **overrides)
