"""SSDLite frozen graphs of TensorFlow's Object Detection API (``frozen_inference_graph.pb``) imported as our SSD.

The graph is read by :mod:`mobilenet.weights.graphdef` (no TensorFlow needed); its variables keep their checkpoint
names.

``import_frozen_graph`` reads an ``ssdlite_mobilenet_v2`` graph's settings from the graph itself (input size,
BatchNorm epsilon, [-1, 1] scaling, anchor scales and ratios, box coder, NMS thresholds and caps) and its weights
by name. The graph resizes with TF1's bilinear kernel (no half-pixel offset): ``resize_bilinear_tf1`` is that
kernel in numpy, for inputs equal to TensorFlow's; ``detect`` resizes with PIL instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mobilenet.detection.anchors import box_specs
from mobilenet.detection.config import SSDConfig
from mobilenet.detection.model import SSD
from mobilenet.detection.tfnames import SCOPE, load_tf_variables
from mobilenet.nn.preprocessing import Preprocessing
from mobilenet.weights.graphdef import FrozenGraph, load_frozen_graph

# Variables every SSDLite-MobileNetV2 graph has: a classifier or another detector lacks one.
SSDLITE_MARKERS = (f"{SCOPE}/Conv/weights", *(f"BoxPredictor_0/{p}Predictor/biases" for p in ("BoxEncoding", "Class")))
ANCHOR_SCOPE = "MultipleGridAnchorGenerator"
NMS_OPS = ("NonMaxSuppressionV3", "NonMaxSuppressionV4", "NonMaxSuppressionV5")  # score_threshold is input 4
BOX_CODER_DIVISORS = tuple(f"Postprocessor/Decode/truediv{suffix}/y" for suffix in ("", "_1", "_2", "_3"))


def ssd_config_of(graph: FrozenGraph, source: str = "the graph") -> SSDConfig:
    """The SSDConfig of an Object Detection API ``ssdlite_mobilenet_v2`` graph, read from its nodes and constants."""
    variables = graph.variables()
    for needed in SSDLITE_MARKERS:
        if needed not in variables:
            raise ValueError(
                f"{source} is not an SSDLite on MobileNetV2 graph (no variable {needed}; a classifier or another "
                "detector?): pass an Object Detection API ssdlite_mobilenet_v2 frozen_inference_graph.pb"
            )
    box_outputs = variables["BoxPredictor_0/BoxEncodingPredictor/biases"].size
    num_classes = variables["BoxPredictor_0/ClassPredictor/biases"].size // (box_outputs // 4)
    sizes = [graph.constant_input(node, 1) for node in graph.nodes_of("ResizeBilinear")]
    if len(sizes) != 1 or sizes[0] is None or sizes[0].shape != (2,) or sizes[0][0] != sizes[0][1]:
        raise ValueError(f"{source} does not resize its input to one fixed square size: only fixed_shape_resizer")
    epsilons = graph.bn_epsilons()
    if len(epsilons) != 1:
        raise ValueError(f"{source} has {len(epsilons)} BatchNorm epsilons ({sorted(epsilons)}): expected one")
    paddings = {node.attrs["padding"] for op in ("Conv2D", "DepthwiseConv2dNative") for node in graph.nodes_of(op)}
    if paddings != {"SAME"}:
        raise ValueError(f"{source} pads its convolutions {sorted(paddings)}: only TF's SAME (no explicit padding)")
    # The lowest layer is (0.1, 1), (min_scale, 2), (min_scale, 0.5); the others end with the interpolated box.
    specs = anchor_specs(graph, source)
    config = SSDConfig(
        num_classes=num_classes, input_size=int(sizes[0][0]), padding="tf_same", bn_eps=epsilons.pop(),
        min_scale=specs[0][-1][0], max_scale=specs[-1][0][0], aspect_ratios=tuple(r for _, r in specs[-1][:-1]),
        **_decoding_settings(graph, source),
    )  # fmt: skip
    ours = box_specs(config)
    if len(ours) != len(specs) or not all(
        np.shape(a) == np.shape(b) and np.allclose(a, b, rtol=0, atol=1e-6) for a, b in zip(ours, specs, strict=True)
    ):
        raise ValueError(f"{source}'s anchors {specs} are not ssd_anchor_generator's with the lowest layer reduced")
    return config


def anchor_specs(graph: FrozenGraph, source: str = "the graph") -> list[list[tuple[float, float]]]:
    """Each anchor layer's boxes as (scale, aspect ratio): ``tile_anchors`` divides the scales by sqrt(ratios)."""
    specs = []
    for sqrt in graph.nodes_of("Sqrt"):
        if not sqrt.name.startswith(f"{ANCHOR_SCOPE}/") or (ratios := graph.constant_input(sqrt, 0)) is None:
            continue
        divisions = [node for node in graph.consumers(sqrt.name) if node.op == "RealDiv"]
        scales = graph.constant_input(divisions[0], 0) if divisions else None
        if scales is None or scales.shape != ratios.shape:
            raise ValueError(f"{source}: the anchor generator's {sqrt.name} has no constant scales beside its ratios")
        specs.append([(_round(s), _round(r)) for s, r in zip(scales.tolist(), ratios.tolist(), strict=True)])
    if not specs:
        raise ValueError(f"{source} has no {ANCHOR_SCOPE} with constant scales: not an SSD graph of TF's API")
    return specs


def postprocessing_settings(graph: FrozenGraph) -> dict[str, float | int]:
    """NMS as the graph runs it: score_threshold, iou_threshold, max_per_class and max_detections (those found)."""
    nms = [node for op in NMS_OPS for node in graph.nodes_of(op)]
    if not nms:
        return {}
    settings: dict[str, float | int] = {}
    for key, index in (("iou_threshold", 3), ("score_threshold", 4)):
        if (value := graph.constant_input(nms[0], index)) is not None:
            settings[key] = _round(float(value))
    # Each class's NMS keeps min(max_per_class, boxes); the one other min(constant, boxes) caps the total.
    per_class = {graph.producer(node.inputs[2]).name for node in nms}
    scope = nms[0].name[: nms[0].name.rfind("MultiClassNonMaxSuppression/")]
    for node in graph.nodes_of("Minimum"):
        if node.name.startswith(scope) and (value := graph.constant_input(node, 0)) is not None:
            settings["max_per_class" if node.name in per_class else "max_detections"] = int(value)
    return settings


def graph_preprocessing(graph: FrozenGraph, input_size: int, source: str = "the graph") -> Preprocessing:
    """The graph's pixel scaling ``x * mul - sub`` as mean and std over [0, 1] pixels: (x / 255 - mean) / std."""
    mul, sub = graph.nodes.get("Preprocessor/mul"), graph.nodes.get("Preprocessor/sub")
    scale = None if mul is None else graph.constant_input(mul, 0)
    shift = None if sub is None else graph.constant_input(sub, 1)
    if scale is None or shift is None:
        raise ValueError(f"{source} has no Preprocessor/mul and Preprocessor/sub constants: not SSD MobileNet's")
    std = _round(1.0 / (255.0 * float(scale)))
    mean = _round(float(shift) * std)
    return Preprocessing(input_size=input_size, crop_pct=1.0, mean=(mean,) * 3, std=(std,) * 3)


def import_frozen_graph(path: str | Path) -> SSD:
    """Our SSD from an Object Detection API ``ssdlite_mobilenet_v2`` frozen graph: its settings, weights and names.

    Class names come from a labels file beside it (see ``label_names``); else they are TF's class ids, "1", "2",
    ...: a frozen graph holds no label map.
    """
    path = Path(path)
    graph = load_frozen_graph(path)
    config = ssd_config_of(graph, str(path))
    model = SSD(config)
    load_tf_variables(model, graph.variables(), str(path))
    model.preprocessing = graph_preprocessing(graph, config.input_size, str(path))
    model.class_names = label_names(path, config.num_classes)
    return model.eval()


def label_names(path: Path, num_classes: int) -> list[str]:
    """Background, then the class names of the first ``*labels*.txt`` beside ``path`` that fits (``<stem>_labels.txt``
    first): one name a line, with the background's line (as TF Lite's label files) or without it."""
    files = sorted(path.parent.glob("*labels*.txt"), key=lambda file: (file.name != f"{path.stem}_labels.txt", file))
    for file in files:
        names = [line.strip() for line in file.read_text(errors="replace").splitlines() if line.strip()]
        if len(names) in (num_classes - 1, num_classes):
            return ["background", *names[len(names) - num_classes + 1 :]]
    return ["background", *(str(i) for i in range(1, num_classes))]


def resize_bilinear_tf1(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """TF1's ``ResizeBilinear`` (align_corners and half_pixel_centers False) of an [H, W, C] image, as float32.

    Output pixel ``i`` reads the input at ``i * in / out``: no half-pixel offset, so it is not PIL's or torch's.
    """
    pixels = np.asarray(image, dtype=np.float32)
    (top, bottom, y_lerp), (left, right, x_lerp) = _lerp(pixels.shape[0], height), _lerp(pixels.shape[1], width)
    upper = pixels[top][:, left] + (pixels[top][:, right] - pixels[top][:, left]) * x_lerp[:, None]
    lower = pixels[bottom][:, left] + (pixels[bottom][:, right] - pixels[bottom][:, left]) * x_lerp[:, None]
    return upper + (lower - upper) * y_lerp[:, None, None]


def _lerp(size_in: int, size_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TF's legacy interpolation: source position ``i * in / out`` in float32, its floor, the next index, the lerp."""
    position = np.arange(size_out, dtype=np.float32) * (np.float32(size_in) / np.float32(size_out))
    lower = np.floor(position)
    return lower.astype(np.int64), np.minimum(np.ceil(position), size_in - 1).astype(np.int64), position - lower


def _decoding_settings(graph: FrozenGraph, source: str) -> dict[str, Any]:
    """The box coder's scales, the score conversion (sigmoid of the logits unscaled) and the NMS settings."""
    if not any(node.name.startswith("Postprocessor/") for node in graph.nodes_of("Sigmoid")):
        raise ValueError(f"{source} converts scores without a sigmoid (softmax?): our SSD scores with sigmoids")
    logit_scale = graph.constants.get("Postprocessor/scale_logits/y")
    if logit_scale is not None and float(logit_scale) != 1.0:
        raise ValueError(f"{source} divides its logits by {float(logit_scale)}: our SSD takes logit_scale 1")
    settings: dict[str, Any] = {}
    scales = [graph.constants.get(name) for name in BOX_CODER_DIVISORS]
    if all(scale is not None for scale in scales):
        settings["box_coder_scales"] = tuple(_round(float(scale)) for scale in scales)
    nms = postprocessing_settings(graph)
    return settings | {
        key: nms[key] for key in ("score_threshold", "iou_threshold", "max_detections", "max_per_class") if key in nms
    }


def _round(value: float) -> float:
    """A float32 constant as the decimal it was written as (0.3333 for 0.33329999446868896)."""
    return float(f"{float(value):.6g}")
