"""Detectors from files: our safetensors, Google's SSD TFLite files and TF frozen graphs, classifier backbones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mobilenet.detection.config import KIND
from mobilenet.detection.graphdef import import_frozen_graph
from mobilenet.detection.model import SSD
from mobilenet.detection.tflite import import_ssd_tflite, is_ssd_tflite
from mobilenet.weights.format import read_kind
from mobilenet.weights.load import load_task_model, rebuilt, task_model_from_classifier

BACKGROUND = "background"  # the name of a detector's column 0


def load_detector(path: str | Path, emulate_int8: bool = False, **overrides: Any) -> SSD:
    """An :class:`SSD` from a ``.safetensors`` of ours, Google's SSD ``.tflite`` or a TF ``frozen_inference_graph.pb``.

    ``overrides`` change fields that keep the weights' shapes (``input_size``, ``score_threshold``, ...).
    ``emulate_int8`` (a quantized ``.tflite``): round activations as Google's runtime does, to agree with it.
    """
    path = Path(path)
    if path.suffix == ".tflite" and path.is_file():
        if not is_ssd_tflite(path):
            raise ValueError(not_detection(path))
        if overrides and emulate_int8:
            raise ValueError("emulate_int8 runs the file as it is: drop the config overrides")
        model = import_ssd_tflite(path, emulate_int8)
        return rebuilt(model, overrides) if overrides else model
    if emulate_int8:
        raise ValueError(f"{path} is float weights: emulate_int8 applies to quantized .tflite files")
    if path.suffix == ".pb" and path.is_file():
        model = import_frozen_graph(path)
        return rebuilt(model, overrides) if overrides else model
    return load_task_model(path, SSD, KIND, "an SSD detector", not_detection(path), **overrides)


def is_detection_file(path: str | Path) -> bool:
    """Whether a weights file holds a detector (Google's SSD TFLite or frozen graph, or our file of that kind)."""
    path = Path(path)
    if not path.is_file():
        return False
    if path.suffix == ".tflite":
        return is_ssd_tflite(path)
    if path.suffix == ".pb":
        return True
    return path.suffix == ".safetensors" and read_kind(path) == KIND


def not_detection(path: str | Path) -> str:
    return (
        f"{path} holds a MobileNet classifier, not a detector: pass SSD weights (Google's SSD .tflite, a "
        "frozen_inference_graph.pb, or a trained ssd .safetensors), or fine-tune one from it (--weights)"
    )


def detector_from_classifier(path: str | Path, **overrides: Any) -> SSD:
    """An :class:`SSD` on the backbone of a MobileNet classifier (any file the library loads): fine-tuning's start.

    The backbone's architecture, width, padding and BatchNorm epsilon are the file's; the extra layers and heads
    are new, and so is anything in ``overrides`` (``num_classes``, ``input_size``, ...). The classifier is left.
    """
    return task_model_from_classifier(path, SSD, **overrides)
