"""Import TensorFlow Lite MobileNets (float or quantized) into our models, in float.

A TFLite classifier is a chain of CONV_2D / DEPTHWISE_CONV_2D ops with BatchNorm folded into each
conv's bias. We read the ops in execution order, dequantize their tensors, recognise the
architecture and width by matching the chain of weight shapes against our models (no tensor names),
and load each conv into ours with its BatchNorm set to the identity plus the folded bias.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mobilenet.data.images import load_image, resize_and_crop
from mobilenet.nn.config import ModelConfig
from mobilenet.nn.model import MobileNet
from mobilenet.nn.preprocessing import TF_MEAN, TF_STD, Preprocessing
from mobilenet.nn.variants import MODELS

# TensorFlow's BatchNorm epsilon: kept so that fine-tuning an import behaves as TF would.
TF_BN_EPS = 1e-3


@dataclass(frozen=True)
class TFLiteConv:
    """One convolution of the file, in PyTorch layout (out, in/groups, kh, kw), dequantized."""

    weight: np.ndarray
    bias: np.ndarray
    stride: int
    depthwise: bool


@dataclass(frozen=True)
class TFLiteClassifier:
    """A MobileNet read from a file: the convolutions before the global pooling, then what follows it."""

    convs: tuple[TFLiteConv, ...]
    classifier: TFLiteConv | None  # a 1x1 conv or a fully connected layer after the pooling; None: a backbone
    classifier_kind: str  # "conv", "linear", or "" for a backbone (its output is the pooled features)
    input_size: int
    in_chans: int
    preprocessing: Preprocessing


def _tflite():
    try:
        import tflite
    except ImportError:
        raise ImportError("reading .tflite files needs the 'tflite' package: pip install 'mobilenet[tflite]'") from None
    return tflite


def _tensor_array(model, graph, index: int, raw: bytes) -> np.ndarray:
    """A constant tensor, dequantized to float32 (per tensor or per output channel)."""
    tflite = _tflite()
    tensor = graph.Tensors(index)
    buffer = model.Buffers(tensor.Buffer())
    data = buffer.DataAsNumpy()
    if isinstance(data, int) and buffer.Offset() > 1:  # stored after the flatbuffer (ai-edge-quantizer's files)
        data = np.frombuffer(raw, np.uint8, buffer.Size(), buffer.Offset())
    dtype = {
        tflite.TensorType.FLOAT32: np.float32,
        tflite.TensorType.UINT8: np.uint8,
        tflite.TensorType.INT8: np.int8,
        tflite.TensorType.INT32: np.int32,
    }.get(tensor.Type())
    if dtype is None or isinstance(data, int):
        raise ValueError(f"tensor {tensor.Name().decode()} has no constant data of a supported type")
    values = np.frombuffer(data.tobytes(), dtype=dtype).reshape(tensor.ShapeAsNumpy()).astype(np.float32)
    quant = tensor.Quantization()
    if quant is not None and quant.ScaleLength() > 0:
        scale, zero = quant.ScaleAsNumpy().astype(np.float32), quant.ZeroPointAsNumpy().astype(np.float32)
        if scale.size > 1:  # per channel, along QuantizedDimension
            shape = [1] * values.ndim
            shape[quant.QuantizedDimension()] = -1
            scale, zero = scale.reshape(shape), zero.reshape(shape)
        values = (values - zero) * scale
    return values


def _input_preprocessing(model, graph, input_size: int) -> Preprocessing:
    """What the file's input expects, as mean/std of [0, 1] pixels.

    A uint8 input of scale ``s`` and zero point ``z`` reads pixel ``q`` as ``(q - z) * s``, which is
    ``(q/255 - z/255) / (1 / (255 s))``; an int8 input takes ``q - 128``. A float input takes
    TensorFlow's [-1, 1] convention.
    """
    tensor = graph.Tensors(graph.Inputs(0))
    quant = tensor.Quantization()
    if quant is None or quant.ScaleLength() == 0:
        return Preprocessing(input_size=input_size, mean=TF_MEAN, std=TF_STD)
    scale, zero = float(quant.ScaleAsNumpy()[0]), float(quant.ZeroPointAsNumpy()[0])
    if tensor.Type() == _tflite().TensorType.INT8:
        zero += 128  # an int8 input takes pixel - 128
    return Preprocessing(input_size=input_size, mean=(zero / 255,) * 3, std=(1 / (255 * scale),) * 3)


def read_tflite(path: str | Path) -> TFLiteClassifier:
    """The convolutions of a TFLite MobileNet in execution order, and its classifier if it has one.

    Whatever follows the global pooling (AVERAGE_POOL_2D or MEAN) is the classifier: a 1x1 CONV_2D (TF-slim's
    files) or a FULLY_CONNECTED layer (Keras's), over any number of classes; nothing there is a backbone.
    """
    tflite = _tflite()
    raw = Path(path).read_bytes()
    model = tflite.Model.GetRootAsModel(raw, 0)
    graph = model.Subgraphs(0)
    operators = tflite.BuiltinOperator
    conv_ops = {operators.CONV_2D: False, operators.DEPTHWISE_CONV_2D: True}
    pooling = {operators.AVERAGE_POOL_2D, operators.MEAN}
    convs: list[TFLiteConv] = []
    classifier, kind, pooled = None, "", False
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        pooled = pooled or builtin in pooling
        if builtin == operators.FULLY_CONNECTED and pooled and classifier is None:
            weight = _tensor_array(model, graph, op.Inputs(1), raw)  # (out, in)
            bias = _bias(model, graph, op, len(weight), raw)
            classifier, kind = TFLiteConv(weight[:, :, None, None], bias, 1, False), "linear"
        elif builtin in conv_ops:
            conv = _conv(model, graph, op, conv_ops[builtin], raw)
            if not pooled:
                convs.append(conv)
            elif classifier is None:
                classifier, kind = conv, "conv"
    if not convs:
        raise ValueError(f"{path} has no convolutions: it is not a MobileNet")
    _, height, width, channels = graph.Tensors(graph.Inputs(0)).ShapeAsNumpy()
    if height != width:
        raise ValueError(f"{path} takes {height}x{width} inputs; only square MobileNets are supported")
    pre = _input_preprocessing(model, graph, int(height))
    return TFLiteClassifier(tuple(convs), classifier, kind, int(height), int(channels), pre)


def _bias(model, graph, op, outputs: int, raw: bytes) -> np.ndarray:
    has_bias = op.InputsLength() > 2 and op.Inputs(2) >= 0
    return _tensor_array(model, graph, op.Inputs(2), raw) if has_bias else np.zeros(outputs, np.float32)


def _conv(model, graph, op, depthwise: bool, raw: bytes) -> TFLiteConv:
    tflite = _tflite()
    options = (tflite.DepthwiseConv2DOptions if depthwise else tflite.Conv2DOptions)()
    table = op.BuiltinOptions()
    options.Init(table.Bytes, table.Pos)
    weight = _tensor_array(model, graph, op.Inputs(1), raw)
    # TFLite stores conv weights OHWI and depthwise weights 1HWO; PyTorch wants OIHW / O1HW.
    weight = weight.transpose(3, 0, 1, 2) if depthwise else weight.transpose(0, 3, 1, 2)
    bias = _bias(model, graph, op, weight.shape[0], raw)
    return TFLiteConv(np.ascontiguousarray(weight), bias, options.StrideH(), depthwise)


def _conv_shapes(model: MobileNet) -> list[tuple[int, ...]]:
    return [tuple(m.weight.shape) for m in model.modules() if isinstance(m, nn.Conv2d)]


def _match_config(net: TFLiteClassifier) -> ModelConfig:
    """The registered architecture and width whose convolutions before the pooling have exactly the file's shapes."""
    shapes = [tuple(conv.weight.shape) for conv in net.convs]
    for base in MODELS.values():
        config = replace(
            base, num_classes=0, in_chans=net.in_chans, input_size=net.input_size, padding="tf_same", bn_eps=TF_BN_EPS
        )
        if _conv_shapes(MobileNet(config)) == shapes:
            return config
    raise ValueError(
        f"the file's {len(shapes)} convolutions (first {shapes[0]}, last {shapes[-1]}) "
        "match no MobileNetV1/V2 of a published width"
    )


def import_tflite(
    path: str | Path, drop_background: bool = True, config_overrides: dict | None = None
) -> tuple[MobileNet, Preprocessing]:
    """A float MobileNet with the weights of a TFLite MobileNet, and the preprocessing it expects.

    With ``drop_background`` a 1001-way TensorFlow classifier loses its class 0 ("background"), so
    the 1000 outputs are ImageNet's classes in synset order, as in torchvision. A file without a
    classifier gives a backbone (``num_classes=0``) whose output is the pooled features.
    """
    net = read_tflite(path)
    config = _match_config(net)
    logits = net.classifier
    if logits is not None:
        if drop_background and len(logits.weight) == 1001:
            logits = replace(logits, weight=logits.weight[1:], bias=logits.bias[1:])
        # A 1x1 conv on the pooled map is a linear layer: both load into torchvision's Linear classifier.
        config = replace(config, num_classes=len(logits.weight))
    config = replace(config, **(config_overrides or {}))
    model = MobileNet(config)
    convs = [m for m in model.features.modules() if isinstance(m, nn.Conv2d)]
    norms = [m for m in model.features.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for conv, norm, source in zip(convs, norms, net.convs, strict=True):
            conv.weight.copy_(torch.from_numpy(source.weight))
            # BatchNorm as identity + folded bias: var = 1 - eps makes sqrt(var + eps) exactly 1.
            norm.weight.fill_(1.0)
            norm.bias.copy_(torch.from_numpy(source.bias))
            norm.running_mean.zero_()
            norm.running_var.fill_(1.0 - norm.eps)
        if logits is not None and model.num_classes:
            classifier = model.classifier[1]
            weight = torch.from_numpy(logits.weight)
            classifier.weight.copy_(weight if classifier.weight.dim() == 4 else weight.flatten(1))
            classifier.bias.copy_(torch.from_numpy(logits.bias))
    return model, net.preprocessing


def litert_logits(path: str | Path, images: list[str | Path], drop_background: bool = True) -> np.ndarray:
    """Run a TFLite classifier on image files with Google's own runtime (``ai-edge-litert``).

    The reference an import is checked against: the same resize and crop as ours, the file's own
    input quantization, outputs dequantized (and class 0 dropped from 1001-way outputs).
    """
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise ImportError("running .tflite files needs Google's runtime: pip install ai-edge-litert") from None

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    (source,), (target,) = interpreter.get_input_details(), interpreter.get_output_details()
    pre = read_tflite(path).preprocessing
    rows = []
    for image_path in images:
        pixels = np.asarray(resize_and_crop(load_image(image_path), pre), dtype=np.float32)
        if source["dtype"] == np.float32:
            tensor = (pixels / 255 - np.array(pre.mean, np.float32)) / np.array(pre.std, np.float32)
        else:  # quantized inputs take the pixels themselves (shifted for int8), see _input_preprocessing
            tensor = pixels - 128 if source["dtype"] == np.int8 else pixels
        interpreter.set_tensor(source["index"], tensor[None].astype(source["dtype"]))
        interpreter.invoke()
        output = interpreter.get_tensor(target["index"])[0].astype(np.float32)
        scale, zero = target["quantization"]
        rows.append((output - zero) * scale if scale else output)
    logits = np.stack(rows)
    return logits[:, 1:] if drop_background and logits.shape[1] == 1001 else logits
