"""Google's SSD TFLite files (TF Lite's COCO ``detect.tflite``, float or quantized) imported into :class:`SSD`.

The generic reader gives every convolution with the tensors it reads and writes. The heads are found from the
``TFLite_Detection_PostProcess`` op, not from tensor names: the convolutions whose outputs reach its box-encodings
input (through reshapes and concatenations) are box heads, those reaching its class-predictions input class heads,
and the feature map a head reads places it in a layer. The other convolutions are the trunk (backbone, then extra
layers), matched by their weight shapes against our SSDs at every published width. The count of heads says which
map the lowest layer reads, the lowest heads' width whether it has TF's three boxes, and the anchors their scales.
The op's options fill the config's box coder and NMS fields, its anchors constant must be ours, and the labels file
beside the model (``<name>_labels.txt``, one name a line, the background's first) names the classes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mobilenet.detection.anchors import anchors_per_cell, grid_sizes, ssd_anchors
from mobilenet.detection.config import BACKBONE_LOCATIONS, BACKBONE_STRIDES, SSDConfig
from mobilenet.detection.model import BOX_CODE_SIZE, SSD
from mobilenet.nn.preprocessing import Preprocessing
from mobilenet.nn.variants import MODELS
from mobilenet.runtimes.litert import POSTPROCESS_OP
from mobilenet.utils.files import nonempty_lines
from mobilenet.weights.chain import conv_shapes, load_folded
from mobilenet.weights.int8 import Quantized, round_conv_outputs
from mobilenet.weights.tflite import (
    TF_BN_EPS,
    TFLiteConv,
    TFLiteError,
    activation_grid,
    embedded_labels,
    read_model,
    read_tflite,
    reads_tflite,
    tensor_array,
    tflite_schema,
)

BACKGROUND = "background"  # the name of column 0 (the labels file's first line, "???")


@dataclass(frozen=True)
class SSDFile:
    """What an SSD TFLite file holds, by role: the trunk, the heads per layer, and what the post-processing op reads."""

    trunk: tuple[TFLiteConv, ...]  # backbone then extra layers, in execution order
    box_heads: tuple[tuple[TFLiteConv, ...], ...]  # per layer, shallowest first: the head's convolutions in order
    class_heads: tuple[tuple[TFLiteConv, ...], ...]
    anchors: np.ndarray  # [A, 4] (cy, cx, h, w), dequantized
    anchor_step: float  # the anchors' quantization step (0 for float anchors)
    options: dict[str, Any]  # the op's custom options, as the file writes them
    num_classes: int  # columns of the class predictions, background included
    box_codes: int  # the tensor of box encodings the op reads
    class_logits: int  # the tensor of class logits (before the sigmoid that the op's scores come from)
    class_scores: int  # the tensor of class scores the op reads
    box_grid: Quantized | None  # the integer grids of the box codes and of the class logits (None: float)
    logit_grid: Quantized | None
    input_size: int
    preprocessing: Preprocessing  # what the input's quantization says of the pixels


def postprocess_op(model: Any) -> Any | None:
    """The file's ``TFLite_Detection_PostProcess`` operator, or None."""
    graph = model.Subgraphs(0)
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        if code.CustomCode() is not None and code.CustomCode().decode() == POSTPROCESS_OP:
            return op
    return None


@reads_tflite
def is_ssd_tflite(path: str | Path) -> bool:
    """Whether a ``.tflite`` file is an SSD detector: it ends in TF Lite's detection post-processing op."""
    return postprocess_op(read_model(path)[0]) is not None


def read_options(op: Any) -> dict[str, Any]:
    """The post-processing op's options (a flexbuffer map: scales, NMS thresholds, max detections, ...)."""
    from flatbuffers import flexbuffers

    return dict(flexbuffers.Loads(op.CustomOptionsAsNumpy().tobytes()))


@reads_tflite
def read_ssd_tflite(path: str | Path) -> SSDFile:
    """Read an SSD TFLite file by roles; a file without the detection op (a classifier, say) is a clear error."""
    schema, (model, raw) = tflite_schema(), read_model(path)
    graph = model.Subgraphs(0)
    op = postprocess_op(model)
    if op is None:
        raise TFLiteError(
            f"{path} has no {POSTPROCESS_OP} op: it is not an SSD detector "
            "(a classifier? load it with mobilenet.weights.load_model)"
        )
    net = read_tflite(path)
    builtin = {}  # tensor -> (builtin op code, its input tensors), for every non-conv op
    for i in range(graph.OperatorsLength()):
        other = graph.Operators(i)
        code = model.OperatorCodes(other.OpcodeIndex())
        for j in range(other.OutputsLength()):
            builtin[other.Outputs(j)] = (max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), other.InputsAsNumpy())
    by_output = {conv.writes: conv for conv in net.convs}
    # Ours dequantize the network's int8 outputs before the op; Google's feed it uint8.
    passing = {schema.BuiltinOperator.RESHAPE, schema.BuiltinOperator.SQUEEZE, schema.BuiltinOperator.CONCATENATION,
               schema.BuiltinOperator.DEQUANTIZE}  # fmt: skip

    def quantized(tensor: int) -> int:
        """The integer tensor a DEQUANTIZE op turned into ``tensor``, or ``tensor`` itself."""
        code, inputs = builtin.get(tensor, (None, []))
        return int(inputs[0]) if code == schema.BuiltinOperator.DEQUANTIZE else tensor

    def reaching(tensor: int) -> list[TFLiteConv]:
        """The convolutions whose outputs make up ``tensor`` through reshapes and concatenations, in order."""
        if tensor in by_output:
            return [by_output[tensor]]
        code, inputs = builtin.get(tensor, (None, []))
        if code not in passing:
            raise TFLiteError(f"{path}: the detection op's inputs are not reshaped, concatenated convolution outputs")
        sources = inputs if code == schema.BuiltinOperator.CONCATENATION else inputs[:1]
        return [conv for source in sources for conv in reaching(int(source))]

    box_input, class_input, anchor_input = (op.Inputs(i) for i in range(3))
    code, logistic_inputs = builtin.get(class_input, (None, []))
    if code != schema.BuiltinOperator.LOGISTIC:
        raise TFLiteError(f"{path}: the detection op's class scores are not a sigmoid of the class predictions")
    logits = int(logistic_inputs[0])
    readers: dict[int, int] = {}
    for conv in net.convs:
        readers[conv.reads] = readers.get(conv.reads, 0) + 1

    def head(final: TFLiteConv) -> tuple[TFLiteConv, ...]:
        """A head: its last conv, and before it any conv whose output only this head reads (SSDLite's depthwise)."""
        convs = [final]
        while convs[0].reads in by_output and readers[convs[0].reads] == 1:
            convs.insert(0, by_output[convs[0].reads])
        return tuple(convs)

    box_heads, class_heads = [head(c) for c in reaching(box_input)], [head(c) for c in reaching(logits)]
    in_heads = {id(conv) for convs in box_heads + class_heads for conv in convs}
    trunk = tuple(conv for conv in net.convs if id(conv) not in in_heads)
    maps = [conv.writes for conv in trunk]
    if [h[0].reads for h in box_heads] != [h[0].reads for h in class_heads] or any(
        h[0].reads not in maps for h in box_heads
    ):
        raise TFLiteError(f"{path}: its box and class heads do not read the same feature maps of one trunk")
    if [maps.index(h[0].reads) for h in box_heads] != sorted(maps.index(h[0].reads) for h in box_heads):
        raise TFLiteError(f"{path}: its heads are concatenated out of the feature maps' order, which SSD does not do")
    anchor_tensor = graph.Tensors(anchor_input)
    quant = anchor_tensor.Quantization()
    step = float(quant.ScaleAsNumpy()[0]) if quant is not None and quant.ScaleLength() else 0.0
    return SSDFile(
        trunk, tuple(box_heads), tuple(class_heads), tensor_array(model, graph, anchor_input, raw), step,
        read_options(op), int(graph.Tensors(class_input).ShapeAsNumpy()[-1]), box_input, logits, class_input,
        activation_grid(graph, quantized(box_input)), activation_grid(graph, quantized(logits)), net.input_size,
        net.preprocessing,
    )  # fmt: skip


def file_config(found: SSDFile, path: str | Path) -> SSDConfig:
    """The config whose trunk and heads have exactly the file's convolutions, with the op's post-processing."""
    options = found.options
    if options.get("num_classes", found.num_classes - 1) + 1 != found.num_classes:
        raise TFLiteError(f"{path}: its class predictions have no background column, which our SSD always has")
    first = found.box_heads[0]
    base = SSDConfig(
        num_classes=found.num_classes, input_size=found.input_size, separable=len(first) == 2,
        predictor_kernel=first[0].weight.shape[-1], padding="tf_same", bn_eps=TF_BN_EPS,
        box_coder_scales=tuple(float(options[k]) for k in ("y_scale", "x_scale", "h_scale", "w_scale")),
        iou_threshold=as_float32(options["nms_iou_threshold"]),
        score_threshold=as_float32(options["nms_score_threshold"]),
        max_detections=int(options["max_detections"]),
        max_per_class=int(options.get("detections_per_class", 100)),
        nms="regular" if options.get("use_regular_nms") else "fast",
    )  # fmt: skip
    base = replace(base, **anchor_layout(found, base, path))
    trunk = [tuple(conv.weight.shape) for conv in found.trunk]
    heads = [[tuple(c.weight.shape) for c in convs] for convs in found.box_heads + found.class_heads]
    widths = sorted({(m.arch, m.width_mult) for m in MODELS.values() if m.arch in BACKBONE_LOCATIONS})
    for arch, width_mult in widths:
        config = replace(base, arch=arch, width_mult=width_mult)
        model = SSD(config)
        ours = [conv_shapes(h) for h in [*model.box_heads, *model.class_heads]]
        if conv_shapes(model.backbone) + conv_shapes(model.extras) == trunk and ours == heads:
            return config
    raise TFLiteError(
        f"{path}: its {len(trunk)} trunk convolutions (first {trunk[0]}, last {trunk[-1]}) and {len(heads)} heads "
        "match no SSD on a MobileNetV1/V2 of a published width"
    )


def anchor_layout(found: SSDFile, base: SSDConfig, path: str | Path) -> dict[str, Any]:
    """The file's lowest layer (the map it reads, from the count of layers; TF's three boxes or all, from its box
    head's width) and its anchors' scales (the lowest layer's box at ``min_scale``, the deepest layer's first)."""
    taps = len(found.box_heads) - len(base.extra_depths)
    if not 0 < taps <= len(BACKBONE_STRIDES):
        raise TFLiteError(f"{path}: its {len(found.box_heads)} layers of heads match no SSD layout we build")
    reduced = found.box_heads[0][-1].weight.shape[0] // BOX_CODE_SIZE == 3
    layout = {"lowest_layer_stride": BACKBONE_STRIDES[-taps], "reduce_boxes_in_lowest_layer": reduced}
    config = replace(base, **layout)
    rows, cols = grid_sizes(config, config.input_size, config.input_size)[-1]
    deepest = max(len(found.anchors) - rows * cols * anchors_per_cell(config)[-1], 0)

    def scale(index: int) -> float:  # a box's scale: sqrt(h * w), whatever its aspect ratio
        return nearest(float(np.sqrt(found.anchors[index, 2] * found.anchors[index, 3])), found.anchor_step)

    return layout | {"min_scale": scale(1 if reduced else 0), "max_scale": scale(deepest)}


def nearest(value: float, step: float) -> float:
    """The number of fewest decimals within half a quantization ``step`` of ``value`` (0.2, not 0.19921875)."""
    return next(
        (rounded for digits in range(1, 7) if abs((rounded := round(value, digits)) - value) <= step / 2 + 1e-6),
        value,
    )


def as_float32(value: float) -> float:
    """A float32 option as the number it was written from (0.6, not 0.6000000238418579)."""
    return float(f"{value:.7g}")


def check_anchors(config: SSDConfig, found: SSDFile, path: str | Path) -> None:
    """The file's anchors must be ours (within their quantization): otherwise the boxes decode against others."""
    ours = ssd_anchors(config, grid_sizes(config, config.input_size, config.input_size)).numpy()
    if ours.shape != found.anchors.shape:
        raise TFLiteError(f"{path} has {len(found.anchors)} anchors, our SSD {len(ours)}: a layout we do not build")
    worst = float(np.abs(ours - found.anchors).max())
    if worst > found.anchor_step / 2 + 1e-5:
        raise TFLiteError(
            f"{path}'s anchors differ from ours by up to {worst:.4f} (the file's step: {found.anchor_step:.4f}): "
            "scales or aspect ratios we do not build"
        )


def class_names(path: str | Path, num_classes: int) -> list[str] | None:
    """The names of the model's columns from the label file the file carries (its standard metadata's), or else
    from ``<name>_labels.txt`` beside it (column 0 is the background); None when there is neither. ``???`` names
    COCO's unused ids: kept, so column i stays line i."""
    labels = Path(path).with_name(f"{Path(path).stem}_labels.txt")
    lines, source = embedded_labels(path), f"the label file inside {path}"
    if lines is None and not labels.is_file():
        return None
    if lines is None:
        lines, source = nonempty_lines(labels.read_text()), str(labels)
    if len(lines) == num_classes - 1:  # a file that leaves the background out
        lines = [BACKGROUND, *lines]
    if len(lines) != num_classes:
        raise TFLiteError(f"{source} names {len(lines)} classes for {num_classes} columns: is it this model's?")
    return [BACKGROUND, *lines[1:]]


@reads_tflite
def import_ssd_tflite(path: str | Path, emulate_int8: bool = False) -> SSD:
    """A float :class:`SSD` with an SSD TFLite file's weights, post-processing settings, preprocessing (a uint8
    input of scale 1/128 and zero point 128 reads [-1, 1]) and class names. ``emulate_int8``: round every activation
    to the file's integer grid, as Google's runtime computes (:mod:`mobilenet.weights.int8`).

    The file's op runs TF Lite's "fast" NMS (class-agnostic, over each anchor's best class) unless its options say
    ``use_regular_nms``: the model's ``config.nms`` says which, so ``detect`` post-processes as the file does.
    """
    found = read_ssd_tflite(path)
    config = file_config(found, path)
    check_anchors(config, found, path)
    model = SSD(config)
    backbone_convs = len(conv_shapes(model.backbone))
    load_folded(model.backbone.features, found.trunk[:backbone_convs])
    load_folded(model.extras, found.trunk[backbone_convs:])
    for heads, sources in ((model.box_heads, found.box_heads), (model.class_heads, found.class_heads)):
        for ours, convs in zip(heads, sources, strict=True):
            if len(convs) == 2:
                load_folded(ours[0], convs[:1])
            with torch.no_grad():
                ours[-1].weight.copy_(torch.from_numpy(convs[-1].weight))
                ours[-1].bias.copy_(torch.from_numpy(convs[-1].bias))
    if emulate_int8:
        round_model(model, found)
    model.preprocessing = replace(found.preprocessing, crop_pct=1.0)
    model.class_names = class_names(path, config.num_classes)
    return model


def round_model(model: SSD, found: SSDFile) -> None:
    """Round each conv's output to its grid in the file, then the concatenated codes and logits to theirs."""
    backbone_convs = len(conv_shapes(model.backbone))
    round_conv_outputs(model.backbone.features, [conv.output for conv in found.trunk[:backbone_convs]])
    round_conv_outputs(model.extras, [conv.output for conv in found.trunk[backbone_convs:]])
    for heads, sources in ((model.box_heads, found.box_heads), (model.class_heads, found.class_heads)):
        round_conv_outputs(heads, [conv.output for convs in sources for conv in convs])
    grids = (found.box_grid, found.logit_grid)

    def round_outputs(_module: SSD, _args: Any, outputs: tuple[torch.Tensor, torch.Tensor]) -> tuple:
        return tuple(output if grid is None else grid(output) for output, grid in zip(outputs, grids, strict=True))

    model.register_forward_hook(round_outputs)
