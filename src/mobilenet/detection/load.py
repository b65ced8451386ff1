"""Detectors by name and from files: our safetensors, Google's SSD TFLite files and TF frozen graphs, a new detector
on a classifier's backbone (fine-tuning's start), and the torchvision-style builders ``ssdlite_mobilenet_v2/v1``."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from mobilenet.detection.config import DETECTION_MODELS, KIND
from mobilenet.detection.graphdef import import_frozen_graph
from mobilenet.detection.model import SSD
from mobilenet.detection.tflite import import_ssd_tflite, is_ssd_tflite
from mobilenet.weights.format import read_kind
from mobilenet.weights.graphdef import mentions
from mobilenet.weights.load import load_task_file, task_model_from_classifier
from mobilenet.weights.published import find_weights, is_weights_name

BACKGROUND = "background"  # the name of a detector's column 0


# The formats of Google's detectors, imported by suffix (a frozen graph is float: emulate_int8 is refused before).
IMPORTERS = {".tflite": import_ssd_tflite, ".pb": lambda path, _emulate_int8: import_frozen_graph(path)}


def load_detector(path: str | Path, emulate_int8: bool = False, **overrides: Any) -> SSD:
    """An :class:`SSD` from a ``.safetensors`` of ours, Google's SSD ``.tflite`` or a TF ``frozen_inference_graph.pb``.

    ``overrides`` change fields that keep the weights' shapes (``input_size``, ``score_threshold``, ...).
    ``emulate_int8`` (a quantized ``.tflite``): round activations as Google's runtime does, to agree with it.
    """
    return load_task_file(path, SSD, IMPORTERS, is_detector_file, not_detection(path), emulate_int8, **overrides)


def is_detector_file(path: str | Path) -> bool:
    """Whether a weights file holds a detector: a TFLite file ending in TF Lite's detection op, a TF frozen graph of
    the Object Detection API, or our safetensors of its kind."""
    path = Path(path)
    if not path.is_file():
        return False
    if path.suffix == ".tflite":
        return is_ssd_tflite(path)
    if path.suffix == ".pb":  # the Object Detection API's graph; a classifier's (TF-slim's) has no box predictor
        return mentions(path, "BoxPredictor_0/")
    return path.suffix == ".safetensors" and read_kind(path) == KIND


def not_detection(path: str | Path) -> str:
    return (
        f"{path} holds no SSD detector: pass SSD weights (Google's SSD .tflite, a frozen_inference_graph.pb, or a "
        f".safetensors of the {KIND} kind); a classifier's weights start one, its backbone under new heads "
        "(detector_from_classifier)"
    )


def create_detector(
    name: str, weights: str | Path | None = None, progress: bool = True, emulate_int8: bool = False, **overrides: Any
) -> SSD:
    """A registered detector: new, or from a weights file (no published detector has a name yet; ``emulate_int8``
    as :func:`load_detector` takes it)."""
    if weights is not None and is_weights_name(weights):
        find_weights((), name, str(weights))  # says which names exist: none yet
    if weights is not None:
        return load_detector(weights, emulate_int8, **overrides)
    return SSD(replace(DETECTION_MODELS[name], **overrides))


def detector_from_classifier(path: str | Path, **overrides: Any) -> SSD:
    """An :class:`SSD` on the backbone of a MobileNet classifier (any file the library loads): fine-tuning's start.

    The backbone's architecture, width, padding and BatchNorm epsilon are the file's; the extra layers and heads
    are new, and so is anything in ``overrides`` (``num_classes``, ``input_size``, ...). The classifier is left.
    """
    return task_model_from_classifier(path, SSD, **overrides)


def ssdlite_mobilenet_v2(weights: str | Path | None = None, num_classes: int = 91, **kwargs: Any) -> SSD:
    """SSDLite on MobileNetV2 (the paper's Table 6), ``num_classes`` counting the background column."""
    if weights is not None:
        return create_detector("ssdlite_mobilenet_v2", weights, **kwargs)
    return create_detector("ssdlite_mobilenet_v2", num_classes=num_classes, **kwargs)


def ssdlite_mobilenet_v1(weights: str | Path | None = None, num_classes: int = 91, **kwargs: Any) -> SSD:
    """SSDLite on MobileNetV1 (the paper's Table 6), as :func:`ssdlite_mobilenet_v2`."""
    if weights is not None:
        return create_detector("ssdlite_mobilenet_v1", weights, **kwargs)
    return create_detector("ssdlite_mobilenet_v1", num_classes=num_classes, **kwargs)
