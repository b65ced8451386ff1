"""Full-integer TFLite for phones, Coral and MediaPipe: int8 weights and activations, uint8 pixels in.

Written by our own TFLite writer (:mod:`mobilenet.inference.tflite_lower`), in the user's environment: the model
with BatchNorm folded, exported by ``torch.export``, each op written as its TFLite builtin, weights int8 per
channel, activations int8 on ranges observed on real images, biases corrected for the drift the rounding gives each
layer's output on them (:mod:`mobilenet.inference.tflite_correct`). The input is uint8 NHWC pixels (what cameras,
Coral's and MediaPipe's image pipelines give), the normalization inside the file. The outputs are what Google's files
of each task give: a classifier's float32 class probabilities (its int8 logits dequantized, then a softmax), a
segmenter's per-class logits, a detector's boxes, classes, scores and count from TF Lite's detection op. The
standard TFLite Model Metadata and a label file go with them, for MediaPipe's tasks. The file is checked with
Google's runtime before it is kept: how often its classes are the float model's on the check images.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mobilenet.data.images import ImageSource, image_batch
from mobilenet.inference.export import class_agreement, is_detector, model_outputs, model_preprocessing, prepare_export
from mobilenet.inference.tflite_aten import export_graph
from mobilenet.inference.tflite_calibrate import fold_input_normalization, input_grid, observe_ranges
from mobilenet.inference.tflite_correct import correct_biases
from mobilenet.inference.tflite_graph import Grid, TFLiteGraph
from mobilenet.inference.tflite_lower import Lowering
from mobilenet.inference.tflite_metadata import (
    METADATA_ENTRY,
    VALUE_LABELS,
    ModelInfo,
    TensorInfo,
    metadata_flatbuffer,
    with_associated_files,
)
from mobilenet.nn.features import MobileNetFeatures
from mobilenet.nn.model import MobileNet
from mobilenet.nn.preprocessing import Preprocessing
from mobilenet.runtimes import litert
from mobilenet.runtimes.litert import POSTPROCESS_OP, LiteRTFile
from mobilenet.utils.files import atomic_path
from mobilenet.utils.optional import require
from mobilenet.weights.format import model_metadata
from mobilenet.weights.tflite import PREPROCESSING_METADATA


@dataclass(frozen=True)
class EdgeReport:
    path: Path
    file_size: int  # bytes
    input: str  # dtype, NHWC shape, scale and zero point of the file's input
    calibrated_on: int  # images
    checked_on: int  # images
    agreement: float  # the share of classes LiteRT gives as the float model does, on the check images
    measured: str  # of what: "top-1" (a classifier), "pixels" (a segmenter), "anchors" (a detector's top class)


def export_tflite_int8(
    model: nn.Module,
    path: str | Path,
    calibration: ImageSource,
    check: ImageSource | None = None,
    limit: int = 200,
    bias_correction: bool = True,
) -> EdgeReport:
    """Write ``model`` (a classifier, segmenter or detector) as a full-integer TFLite file, calibrated on
    ``calibration`` (up to ``limit`` images): activations' ranges, and unless not ``bias_correction`` the drift its
    int8 layers' outputs would have, taken out of their biases (on the first 16 images).

    ``check`` (default: the calibration images) is run through the file by LiteRT and through the float model; the
    report gives how often their classes agree: top-1 (a tie in the file's output that includes the float model's
    class counts), each pixel's, each anchor's top class (the network's, before the detection op).
    """
    litert_runtime()
    if isinstance(model, MobileNetFeatures) or getattr(model, "num_classes", 1) == 0:
        raise ValueError("int8 TFLite export takes a model with classes (a classifier, segmenter or detector): its "
                         "check compares them; a features-only model has none")  # fmt: skip
    reference, folded, _, _ = prepare_export(model, None, 1)
    detector, classifier = is_detector(model), isinstance(model, MobileNet)
    pre = model_preprocessing(model)
    images = image_batch(calibration, pre, limit)
    graph = export_graph(folded, pre.input_size)
    pixels = input_grid(pre)
    fold_input_normalization(graph, pre, pixels)
    seen = pixel_preprocessing(pre, pixels)
    inputs = renormalized(images, pre, seen)  # as the folded graph takes them: the file's real input
    lowering = Lowering(graph, observe_ranges(graph, inputs), pixels)
    if bias_correction:
        correct_biases(graph, inputs[:BIAS_CORRECTION_IMAGES], lowering.grid)
    lowered = lowering.lower(dequantize=False)
    file = lowered.file
    outputs, kept = task_outputs(file, lowered.outputs, model)
    metadata = {**model_metadata(model), PREPROCESSING_METADATA: seen.to_json()}
    file.metadata.extend((key, value.encode()) for key, value in metadata.items())
    info, labels = standard_metadata(model, pixels, pre.input_size)
    file.metadata.append((METADATA_ENTRY, metadata_flatbuffer(info)))
    content = file.serialize([lowered.input], outputs, f"{type(model).__name__} (full-integer int8), by mobilenet")
    content = with_associated_files(content, {LABELS: labels})
    checks = images if check is None else image_batch(check, pre, limit)
    expected = model_outputs(reference, checks)
    with atomic_path(path) as tmp:
        tmp.write_bytes(content)
        runtime = LiteRTFile(tmp, kept=kept)
        got = runtime(runtime.feed(renormalized(checks, pre, seen)))
        if detector:  # the detection op's inputs, kept: the network's box codes and class logits
            got = got[len(outputs) :]
        got = [
            g.permute(0, 3, 1, 2) if layout == "nhwc" else g for g, layout in zip(got, lowered.layouts, strict=False)
        ]
    if classifier:
        agreement, measured = top1_agreement(expected[0], got[0].numpy()), "top-1"
    else:
        agreement, measured = class_agreement(expected, got, detector), "anchors" if detector else "pixels"
    scale, zero = pixels.scale[0], pixels.zero_point[0]
    described = f"uint8 1x{pre.input_size}x{pre.input_size}x3 pixels, scale {scale:.6g}, zero point {zero}"
    size = Path(path).stat().st_size
    return EdgeReport(Path(path), size, described, len(images), len(checks), agreement, measured)


LABELS = "labels.txt"
BIAS_CORRECTION_IMAGES = 16  # each layer's channel means over 16 images' positions; all at once in memory


def task_outputs(file: TFLiteGraph, tensors: list[int], model: nn.Module) -> tuple[list[int], list[int]]:
    """The file's outputs for the model's kind, written after its network's int8 ``tensors``, and the inner tensors
    the check reads (a detector's box codes and class logits, the detection op's inputs)."""
    if is_detector(model):
        return postprocess(file, tensors, model.config), tensors[:2]
    logits = file.dequantized(tensors[0], "logits")
    if not isinstance(model, MobileNet):
        return [logits], []
    probabilities = file.tensor("probabilities", file.tensors[logits].shape, np.float32)
    file.operator("SOFTMAX", [logits], [probabilities], file.options("SoftmaxOptions", beta=1.0))
    return [probabilities], []


def standard_metadata(model: nn.Module, pixels: Grid, size: int) -> tuple[ModelInfo, str]:
    """TFLite Model Metadata for the file MediaPipe's ImageClassifier, ImageSegmenter or ObjectDetector reads, and
    its label file (a detector's lists the classes its op outputs, background left out)."""
    names = list(getattr(model, "class_names", None) or [str(i) for i in range(model.num_classes)])
    mean, std = pixels.zero_point[0], 1 / pixels.scale[0]  # the pixels' normalization: (pixel - mean) / std
    image = TensorInfo("image", "RGB pixels, uint8", "image", ((mean,) * 3, (std,) * 3), (0, 255), size=(size, size))
    kind = type(model).__name__
    if is_detector(model):
        outputs = [
            TensorInfo("location", "The boxes: ymin, xmin, ymax, xmax in [0, 1].", "boxes", value_range=(2, 2)),
            TensorInfo("category", "The boxes' classes.", "features", labels=LABELS, label_type=VALUE_LABELS,
                       value_range=(2, 2)),
            TensorInfo("score", "The boxes' scores.", "features", value_range=(2, 2)),
            TensorInfo("number of detections", "How many boxes there are."),
        ]  # fmt: skip
        return ModelInfo(kind, "Object detector (single shot)", "1", [image], outputs), "\n".join(names[1:]) + "\n"
    if isinstance(model, MobileNet):
        output = TensorInfo("probability", "Probabilities of the classes.", "features", stats=(0, 1), labels=LABELS)
        return ModelInfo(kind, "Image classifier", "1", [image], [output]), "\n".join(names) + "\n"
    output = TensorInfo("masks", "Per-class scores (logits) of each pixel.", "masks", labels=LABELS,
                        value_range=(1, 2))  # fmt: skip
    return ModelInfo(kind, "Semantic segmenter", "1", [image], [output]), "\n".join(names) + "\n"


def postprocess(file: TFLiteGraph, tensors: list[int], config: Any) -> list[int]:
    """TF Lite's ``TFLite_Detection_PostProcess`` on a detector's box codes, class logits (through a sigmoid) and
    anchors, with the model's box coder and NMS settings: the boxes, classes, scores and count of Google's
    ``detect.tflite``, which Android's and MediaPipe's detectors read."""
    box_codes, logits = file.dequantized(tensors[0], "box_codes"), file.dequantized(tensors[1], "logits")
    scores = file.tensor("class_scores", file.tensors[logits].shape, np.float32)
    file.operator("LOGISTIC", [logits], [scores])
    found = config.max_detections
    shapes = {"boxes": (1, found, 4), "classes": (1, found), "scores": (1, found), "count": (1,)}
    outputs = [file.tensor(name, shape, np.float32) for name, shape in shapes.items()]
    scales = dict(zip(("y_scale", "x_scale", "h_scale", "w_scale"), map(float, config.box_coder_scales), strict=True))
    options = {
        "max_detections": found, "max_classes_per_detection": 1, "detections_per_class": config.max_per_class,
        "use_regular_nms": config.nms == "regular", "nms_score_threshold": float(config.score_threshold),
        "nms_iou_threshold": float(config.iou_threshold), "num_classes": config.num_classes - 1, **scales,
    }  # fmt: skip
    flexbuffers = require("flatbuffers.flexbuffers", "tflite")
    file.operator(
        f"CUSTOM:{POSTPROCESS_OP}", [box_codes, scores, tensors[2]], outputs, custom=flexbuffers.Dumps(options)
    )
    return outputs


def pixel_preprocessing(pre: Preprocessing, grid: Grid) -> Preprocessing:
    """``pre`` with the normalization the file's uint8 input grid stands for (one mean and std for the channels):
    images preprocessed so reach the file as their own pixels (:func:`mobilenet.runtimes.litert.file_input`)."""
    zero, scale = grid.zero_point[0], grid.scale[0]
    return replace(pre, mean=(zero / 255,) * 3, std=(1 / (255 * scale),) * 3)


def renormalized(images: torch.Tensor, pre: Preprocessing, target: Preprocessing) -> torch.Tensor:
    """Images normalized with ``pre`` as ``target`` normalizes the same pixels."""
    mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in (pre.mean, pre.std))
    target_mean, target_std = (torch.tensor(v).view(1, -1, 1, 1) for v in (target.mean, target.std))
    return ((images * std + mean) - target_mean) / target_std


def top1_agreement(ours: np.ndarray, reference: np.ndarray) -> float:
    """How often our top-1 is one of LiteRT's top classes, for (N, classes) outputs of the same images.

    int8 outputs can tie, and LiteRT's argmax then names the first of the tied classes, which a float
    model has no reason to prefer: a tie that includes ours counts as agreement.
    """
    best = reference.max(axis=1)
    return float(np.mean(reference[np.arange(len(reference)), ours.argmax(axis=1)] == best))


def litert_runtime() -> None:
    """Google's runtime, which checks the file, is installed: or one line saying how to get it."""
    if not litert.installed():
        raise ImportError("checking the TFLite file needs Google's runtime: pip install 'mobilenet[tflite]'")
