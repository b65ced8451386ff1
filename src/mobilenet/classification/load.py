"""MobileNet classifiers by name and from files: new, from a weights file of any format the library reads, or from
published weights fetched by name; and torchvision's builders, ``mobilenet_v2`` and ``mobilenet_v1``."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from mobilenet.classification.published import PUBLISHED
from mobilenet.data.imagenet import imagenet_names_for
from mobilenet.nn.model import MobileNet
from mobilenet.nn.variants import MODELS, model_name
from mobilenet.weights.download import fetch
from mobilenet.weights.huggingface import is_transformers
from mobilenet.weights.load import load_model
from mobilenet.weights.published import find_weights, is_weights_name


def load_classifier(path: str | Path, emulate_int8: bool = False, **overrides: Any) -> MobileNet:
    """A MobileNet classifier (or backbone) from a weights file: ours, a torchvision or timm state dict, a TFLite
    classifier (see :func:`mobilenet.weights.load.load_model`); ``overrides`` keep the weights' shapes.
    ``emulate_int8`` (a quantized ``.tflite``): round activations as Google's runtime does, to agree with it."""
    return load_model(path, None, emulate_int8, **overrides)


def is_classifier_file(path: str | Path) -> bool:
    """Whether a file that is not one of ours holds a classifier for certain: a transformers folder of one, a TFLite
    classifier (asked after the
    other kinds, which claim their own TFLite files). Other files are read as classifiers only when no kind
    claims them (the fallback), so that a file is not said to hold a classifier before one is found in it."""
    if is_transformers(path):  # a transformers folder of a MobileNet classifier
        return True
    if Path(path).suffix != ".tflite":
        return False
    from mobilenet.weights.tflite import read_tflite

    net = read_tflite(path)
    return net.classifier is not None and not net.dense_head


def create_classifier(
    name: str, weights: str | Path | None = None, progress: bool = True, emulate_int8: bool = False, **overrides: Any
) -> MobileNet:
    """The registered classifier ``name``, new or with ``weights`` (a file, or a published name or "DEFAULT"),
    with ``overrides`` of its :class:`~mobilenet.nn.config.ModelConfig`; ``emulate_int8`` as
    :func:`load_classifier` takes it."""
    if name not in MODELS:
        raise ValueError(f"{name!r} is not a classifier: choose one of {', '.join(sorted(MODELS))}")
    base = MODELS[name]
    if weights is None:
        return MobileNet(replace(base, **overrides))
    if not is_weights_name(weights):
        return load_model(weights, base, emulate_int8, **overrides)
    width = overrides.get("width_mult", base.width_mult)
    entry = find_weights(PUBLISHED, model_name(replace(base, width_mult=width)), str(weights))
    model = load_model(fetch(entry, progress), base, emulate_int8, **overrides)
    model.preprocessing = entry.preprocessing
    # A file without labels of its own (in its metadata) has none in the cache: ImageNet's names, shipped
    model.class_names = model.class_names or imagenet_names_for(model.num_classes)
    return model


def mobilenet_v2(
    weights: str | Path | None = None, width_mult: float = 1.0, num_classes: int = 1000, **kwargs: Any
) -> MobileNet:
    """MobileNetV2 with torchvision's signature.

    Args:
        weights: a weights file, the name of published weights, or "DEFAULT" (None: random weights).
        width_mult: the width multiplier alpha.
        num_classes: the classifier's outputs.
        **kwargs: other fields of :class:`~mobilenet.nn.config.ModelConfig` (``input_size``, ``dropout``, ...).

    Returns:
        The model.
    """
    return create_classifier("mobilenet_v2", weights, width_mult=width_mult, num_classes=num_classes, **kwargs)


def mobilenet_v1(
    weights: str | Path | None = None, width_mult: float = 1.0, num_classes: int = 1000, **kwargs: Any
) -> MobileNet:
    """MobileNetV1 in the same style as :func:`mobilenet_v2`."""
    return create_classifier("mobilenet_v1", weights, width_mult=width_mult, num_classes=num_classes, **kwargs)
