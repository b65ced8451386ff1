"""Import TensorFlow Lite MobileNets (float or quantized) into our models, in float.

A TFLite classifier is a chain of CONV_2D / DEPTHWISE_CONV_2D ops with BatchNorm folded into each
conv's bias. We read the ops in execution order, dequantize their tensors, recognise the
architecture and width by matching the chain of weight shapes against our models (no tensor names),
and load each conv into ours with its BatchNorm set to the identity plus the folded bias.
"""

from __future__ import annotations

import functools
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from mobilenet.data.images import image_batch
from mobilenet.nn.config import ModelConfig
from mobilenet.nn.model import MobileNet
from mobilenet.nn.preprocessing import TF_MEAN, TF_STD, Preprocessing
from mobilenet.runtimes.litert import interpreter, outputs
from mobilenet.utils.files import nonempty_lines
from mobilenet.weights.chain import load_folded, match_config
from mobilenet.weights.int8 import Quantized, round_conv_outputs, round_input, round_output, round_residual_sums

# TensorFlow's BatchNorm epsilon: kept so that fine-tuning an import behaves as TF would.
TF_BN_EPS = 1e-3
# The name of the model metadata entry that holds a file's Preprocessing as JSON (our int8 export writes it).
PREPROCESSING_METADATA = "mobilenet.preprocessing"
TFLITE_IDENTIFIER = b"TFL3"  # the flatbuffer's file identifier, bytes 4..8

Read = TypeVar("Read", bound=Callable[..., Any])


class TFLiteError(ValueError):
    """A TFLite file that cannot be used as it is: damaged, or not a model we build. The message says which."""


# What reading a flatbuffer whose offsets, lengths or shapes are wrong raises: the schema's lazy accessors meet them
# wherever a field is first read, and NumPy when the dequantized tensors do not fit their shapes.
DAMAGE = (struct.error, IndexError, KeyError, TypeError, AttributeError, ValueError, UnicodeDecodeError, OverflowError,
          MemoryError)  # fmt: skip


def reads_tflite(read: Read) -> Read:
    """Make a function that reads the TFLite file ``path`` (its first argument) refuse a damaged file in one line."""

    @functools.wraps(read)
    def guarded(path: str | Path, *args: Any, **kwargs: Any) -> Any:
        try:
            return read(path, *args, **kwargs)
        except TFLiteError:
            raise
        except DAMAGE as error:
            cut = isinstance(error, struct.error | IndexError) or "smaller than requested" in str(error)
            why = (
                "an offset in it points past its end: cut short or corrupted"
                if cut
                else f"{type(error).__name__}: {str(error)[:120]}"
            )
            # Chained, not hidden: the same types can come from a bug in a reader, which its traceback tells apart.
            raise TFLiteError(f"{path} is a damaged TFLite file ({why}): download or export it again") from error

    return guarded  # type: ignore[return-value]


@dataclass(frozen=True)
class TFLiteConv:
    """One convolution of the file, in PyTorch layout (out, in/groups, kh, kw), dequantized."""

    weight: np.ndarray
    bias: np.ndarray
    stride: int
    depthwise: bool
    dilation: int = 1
    reads_pooled: bool = False  # its input is the global pooling's output (a classifier, DeepLab's image pooling)
    output: Quantized | None = None  # the integer grid of its output, after the fused activation (None: float)
    # The indices of the tensors it reads and writes: how convolutions that are not one chain (a detector's heads
    # on several feature maps) are told apart.
    reads: int = -1
    writes: int = -1


@dataclass(frozen=True)
class TFLiteClassifier:
    """A MobileNet read from a file: the convolutions before the global pooling, then what follows it."""

    convs: tuple[TFLiteConv, ...]
    classifier: TFLiteConv | None  # a 1x1 conv or a fully connected layer after the pooling; None: a backbone
    classifier_kind: str  # "conv", "linear", or "" for a backbone (its output is the pooled features)
    input_size: int
    in_chans: int
    preprocessing: Preprocessing
    after_pooling: tuple[TFLiteConv, ...] = ()  # every conv after the first pooling: DeepLab's head, say
    # The integer grids of the other activations: residual sums in order; "pooled", "merged" (a concatenation),
    # "resized" (the last bilinear resize): what weights.int8 rounds an emulating model to.
    residual_sums: tuple[Quantized | None, ...] = ()
    grids: dict[str, Quantized | None] = field(default_factory=dict)

    @property
    def dense_head(self) -> bool:
        """Whether convolutions after the pooling also read the feature map itself: a segmentation head."""
        return any(not conv.reads_pooled for conv in self.after_pooling)


def tflite_schema():
    try:
        import tflite
    except ImportError:
        raise ImportError("reading .tflite files needs the 'tflite' package: pip install 'mobilenet[tflite]'") from None
    return tflite


def read_model(path: str | Path) -> tuple[Any, bytes]:
    """A file's flatbuffer model and its bytes; a file that is not TFLite's flatbuffer is a clear error."""
    raw = Path(path).read_bytes()
    if raw[4:8] != TFLITE_IDENTIFIER:
        raise TFLiteError(f"{path} is not a TFLite file (no {TFLITE_IDENTIFIER.decode()} identifier): is it complete?")
    return tflite_schema().Model.GetRootAsModel(raw, 0), raw


def _buffer_bytes(model, index: int, raw: bytes) -> bytes | None:
    """The bytes of buffer ``index``, inside the flatbuffer or stored after it (ai-edge-quantizer's files)."""
    buffer = model.Buffers(index)
    data = buffer.DataAsNumpy()
    if isinstance(data, int) and buffer.Offset() > 1:
        return raw[buffer.Offset() : buffer.Offset() + buffer.Size()]
    return None if isinstance(data, int) else data.tobytes()


def tensor_array(model, graph, index: int, raw: bytes) -> np.ndarray:
    """A constant tensor, dequantized to float32 (per tensor or per output channel)."""
    tflite = tflite_schema()
    tensor = graph.Tensors(index)
    data = _buffer_bytes(model, tensor.Buffer(), raw)
    dtype = {
        tflite.TensorType.FLOAT32: np.float32,
        tflite.TensorType.UINT8: np.uint8,
        tflite.TensorType.INT8: np.int8,
        tflite.TensorType.INT32: np.int32,
    }.get(tensor.Type())
    if dtype is None or data is None:
        raise TFLiteError(f"tensor {tensor.Name().decode()} has no constant data of a supported type")
    values = np.frombuffer(data, dtype=dtype).reshape(tensor.ShapeAsNumpy()).astype(np.float32)
    quant = tensor.Quantization()
    if quant is not None and quant.ScaleLength() > 0:
        scale, zero = quant.ScaleAsNumpy().astype(np.float32), quant.ZeroPointAsNumpy().astype(np.float32)
        if scale.size > 1:  # per channel, along QuantizedDimension
            shape = [1] * values.ndim
            shape[quant.QuantizedDimension()] = -1
            scale, zero = scale.reshape(shape), zero.reshape(shape)
        values = (values - zero) * scale
    return values


def _input_preprocessing(model, graph, input_size: int, raw: bytes) -> Preprocessing:
    """What the file's input expects, as mean/std of [0, 1] pixels, so that our float model sees what LiteRT sees.

    Our int8 export normalizes per channel *before* the file (its input is the normalized image, quantized),
    so the quantization cannot tell the mean/std: the export stores its Preprocessing in the model's metadata
    under :data:`PREPROCESSING_METADATA`, and that record wins. Other quantized inputs are pixels: uint8 ``q``
    of scale ``s``, zero point ``z`` reads ``(q - z) s = (q/255 - z/255) / (1 / (255 s))``; int8 takes
    ``q = pixel - 128``. A float input takes TF's [-1, 1]. :func:`mobilenet.runtimes.litert.outputs` then feeds
    the pixel itself.
    """
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() == PREPROCESSING_METADATA.encode():
            stored = Preprocessing.from_json(_buffer_bytes(model, entry.Buffer(), raw).decode())
            return replace(stored, input_size=input_size)
    tensor = graph.Tensors(graph.Inputs(0))
    quant = tensor.Quantization()
    if quant is None or quant.ScaleLength() == 0:
        return Preprocessing(input_size=input_size, mean=TF_MEAN, std=TF_STD)
    scale, zero = float(quant.ScaleAsNumpy()[0]), float(quant.ZeroPointAsNumpy()[0])
    if tensor.Type() == tflite_schema().TensorType.INT8:
        zero += 128  # an int8 input takes pixel - 128
    return Preprocessing(input_size=input_size, mean=(zero / 255,) * 3, std=(1 / (255 * scale),) * 3)


@reads_tflite
def read_tflite(path: str | Path) -> TFLiteClassifier:
    """The convolutions of a TFLite MobileNet in execution order, and its classifier if it has one.

    Whatever follows the global pooling (AVERAGE_POOL_2D or MEAN) is the classifier: a 1x1 CONV_2D (TF-slim's
    files) or a FULLY_CONNECTED layer (Keras's), over any number of classes; nothing there is a backbone.
    """
    tflite = tflite_schema()
    model, raw = read_model(path)
    graph = model.Subgraphs(0)
    operators = tflite.BuiltinOperator
    conv_ops = {operators.CONV_2D: False, operators.DEPTHWISE_CONV_2D: True}
    pooling = {operators.AVERAGE_POOL_2D, operators.MEAN}
    convs: list[TFLiteConv] = []
    after_pooling: list[TFLiteConv] = []
    classifier, kind, pooled, pooled_tensors = None, "", False, set()
    sums: list[Quantized | None] = []
    grids: dict[str, Quantized | None] = {}
    named = {operators.CONCATENATION: "merged", operators.RESIZE_BILINEAR: "resized"}
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        grid = activation_grid(graph, op.Outputs(0)) if op.OutputsLength() else None
        if builtin in pooling and not pooled:
            grids["pooled"] = grid
        if builtin in pooling:
            pooled = True
            pooled_tensors.add(op.Outputs(0))
        if builtin in named:
            grids[named[builtin]] = grid
        if builtin == operators.ADD and not pooled:
            sums.append(grid)
        if builtin == operators.FULLY_CONNECTED and pooled and classifier is None:
            weight = tensor_array(model, graph, op.Inputs(1), raw)  # (out, in)
            bias = _bias(model, graph, op, len(weight), raw)
            classifier, kind = TFLiteConv(weight[:, :, None, None], bias, 1, False, output=grid), "linear"
        elif builtin in conv_ops:
            conv = replace(
                _conv(model, graph, op, conv_ops[builtin], raw), output=grid, reads=op.Inputs(0), writes=op.Outputs(0)
            )
            if not pooled:
                convs.append(conv)
                continue
            conv = replace(conv, reads_pooled=op.Inputs(0) in pooled_tensors)
            after_pooling.append(conv)
            if classifier is None:
                classifier, kind = conv, "conv"
    if not convs:
        raise TFLiteError(f"{path} has no convolutions: it is not a MobileNet")
    _, height, width, channels = graph.Tensors(graph.Inputs(0)).ShapeAsNumpy()
    if height != width:
        raise TFLiteError(f"{path} takes {height}x{width} inputs; only square MobileNets are supported")
    pre = _input_preprocessing(model, graph, int(height), raw)
    return TFLiteClassifier(
        tuple(convs), classifier, kind, int(height), int(channels), pre, tuple(after_pooling), tuple(sums), grids
    )


def activation_grid(graph, index: int) -> Quantized | None:
    """The integer grid of an 8-bit activation tensor (per tensor), or None for a float or other one."""
    tflite = tflite_schema()
    tensor = graph.Tensors(index)
    bounds = {tflite.TensorType.UINT8: (0, 255), tflite.TensorType.INT8: (-128, 127)}.get(tensor.Type())
    quant = tensor.Quantization()
    if bounds is None or quant is None or quant.ScaleLength() != 1:
        return None
    return Quantized(float(quant.ScaleAsNumpy()[0]), int(quant.ZeroPointAsNumpy()[0]), *bounds)


def _bias(model, graph, op, outputs: int, raw: bytes) -> np.ndarray:
    has_bias = op.InputsLength() > 2 and op.Inputs(2) >= 0
    return tensor_array(model, graph, op.Inputs(2), raw) if has_bias else np.zeros(outputs, np.float32)


def _conv(model, graph, op, depthwise: bool, raw: bytes) -> TFLiteConv:
    tflite = tflite_schema()
    options = (tflite.DepthwiseConv2DOptions if depthwise else tflite.Conv2DOptions)()
    table = op.BuiltinOptions()
    options.Init(table.Bytes, table.Pos)
    weight = tensor_array(model, graph, op.Inputs(1), raw)
    # TFLite stores conv weights OHWI and depthwise weights 1HWO; PyTorch wants OIHW / O1HW.
    weight = weight.transpose(3, 0, 1, 2) if depthwise else weight.transpose(0, 3, 1, 2)
    bias = _bias(model, graph, op, weight.shape[0], raw)
    return TFLiteConv(np.ascontiguousarray(weight), bias, options.StrideH(), depthwise, options.DilationHFactor())


def match_tflite_config(net: TFLiteClassifier) -> ModelConfig:
    """The registered architecture and width whose convolutions before the pooling have exactly the file's shapes."""
    shapes = [tuple(conv.weight.shape) for conv in net.convs]
    config = match_config(shapes, in_chans=net.in_chans, input_size=net.input_size, padding="tf_same", bn_eps=TF_BN_EPS)
    if config is None:
        raise TFLiteError(
            f"the file's {len(shapes)} convolutions (first {shapes[0]}, last {shapes[-1]}) "
            "match no MobileNetV1/V2 of a published width"
        )
    return config


@reads_tflite
def import_tflite(
    path: str | Path, drop_background: bool = True, config_overrides: dict | None = None, emulate_int8: bool = False
) -> tuple[MobileNet, Preprocessing]:
    """A float MobileNet with the weights of a TFLite MobileNet, and the preprocessing it expects.

    With ``drop_background`` a 1001-way TensorFlow classifier loses its class 0 ("background"), so
    the 1000 outputs are ImageNet's classes in synset order, as in torchvision. A file without a
    classifier gives a backbone (``num_classes=0``) whose output is the pooled features.
    ``emulate_int8``: round every activation to the file's integer grid, as Google's runtime computes
    (:mod:`mobilenet.weights.int8`), rather than the float model the weights approximate.
    """
    net = read_tflite(path)
    if net.dense_head:
        raise TFLiteError(
            f"{path} is no classifier (convolutions read the feature map after its global pooling): load it with "
            "mobilenet.registry.load, which tells the kind of a file"
        )
    config = match_tflite_config(net)
    logits = net.classifier
    if logits is not None:
        if drop_background and len(logits.weight) == 1001:
            logits = replace(logits, weight=logits.weight[1:], bias=logits.bias[1:])
        # A 1x1 conv on the pooled map is a linear layer: both load into torchvision's Linear classifier.
        config = replace(config, num_classes=len(logits.weight))
    config = replace(config, **(config_overrides or {}))
    model = MobileNet(config)
    load_folded(model.features, net.convs)
    with torch.no_grad():
        if logits is not None and model.num_classes:
            classifier = model.classifier[1]
            weight = torch.from_numpy(logits.weight)
            classifier.weight.copy_(weight if classifier.weight.dim() == 4 else weight.flatten(1))
            classifier.bias.copy_(torch.from_numpy(logits.bias))
    model.preprocessing = net.preprocessing  # the file's, not the config's default: its outputs depend on it
    if emulate_int8:
        round_classifier(model, net)
    return model, net.preprocessing


def round_classifier(model: MobileNet, net: TFLiteClassifier) -> None:
    """Round a classifier imported from ``net`` as the file computes: its backbone, the pooled vector, the logits."""
    round_backbone(model.features, net)
    round_input(model.classifier, net.grids.get("pooled"))
    if net.classifier is not None and model.num_classes:
        round_output(model.classifier[1], net.classifier.output)


def round_backbone(features: nn.Module, net: TFLiteClassifier) -> None:
    """Round a backbone's activations to the file's grids: each conv's output and each residual sum."""
    round_conv_outputs(features, [conv.output for conv in net.convs])
    round_residual_sums(features, net.residual_sums)


@reads_tflite
def is_quantized_tflite(path: str | Path) -> bool:
    """Whether ``path`` is a TFLite file that computes in 8-bit integers (an op's output is an int8 or uint8
    activation): our float model agrees with its runtime only when it rounds those too (``emulate_int8``)."""
    if Path(path).suffix != ".tflite" or not Path(path).is_file():
        return False
    graph = read_model(path)[0].Subgraphs(0)
    ops = (graph.Operators(i) for i in range(graph.OperatorsLength()))
    return any(activation_grid(graph, op.Outputs(0)) is not None for op in ops if op.OutputsLength())


def embedded_labels(path: str | Path) -> list[str] | None:
    """The lines of the label file a TFLite file carries, or None: TFLite Model Metadata's associated files are a zip
    archive stored after the flatbuffer (ours, MediaPipe's and the Task Library's models)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = sorted(name for name in archive.namelist() if "label" in name.lower() and name.endswith(".txt"))
            text = archive.read(names[0]).decode() if names else None
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError):
        return None
    return None if text is None else nonempty_lines(text)


def litert_logits(path: str | Path, images: list[str | Path], drop_background: bool = True) -> np.ndarray:
    """Run a TFLite MobileNet on image files with Google's own runtime (``ai-edge-litert``): (N, outputs).

    The reference an import is checked against: the file's preprocessing as our importer reads it, fed
    by :func:`mobilenet.runtimes.litert.outputs`; class 0 dropped from 1001-way outputs. A backbone gives its pooled
    features.
    """
    batch = image_batch(images, read_tflite(path).preprocessing)
    found = outputs(interpreter(path), batch.permute(0, 2, 3, 1).numpy())
    logits = found.reshape(len(found), -1)
    return logits[:, 1:] if drop_background and logits.shape[1] == 1001 else logits
