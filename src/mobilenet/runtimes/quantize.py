"""int8 post-training static quantization: per-channel int8 weights, uint8 activations from calibration.

Two paths, both from the BatchNorm-folded ONNX graph: ONNX Runtime's QDQ quantizer, and OpenVINO's
NNCF, which also calibrates PyTorch modules for quantization-aware training (``mobilenet.training.qat``). The
calibration method decides how each activation's range is read from the calibration batch.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mobilenet.utils.machine import cpu_flags
from mobilenet.utils.optional import require

# The methods each backend offers; the first is what ``None`` picks. minmax: the full observed range.
# percentile: ORT clips the rarest 0.001%, NNCF averages per-batch quantiles. histogram: NNCF's
# error-minimising range. nncf_default: NNCF's own estimators. ORT's "entropy" is not offered:
# quantize_static cannot set its bin counts, and at its defaults (128 of 128) it is exactly min/max.
METHODS: dict[str, tuple[str, ...]] = {
    "onnxruntime": ("minmax", "percentile"),
    "openvino": ("nncf_default", "minmax", "percentile", "histogram"),
    "executorch": ("histogram",),  # XNNPACK's quantizer observes activations with PyTorch's HistogramObserver
}
CALIBRATION_BATCH = 10  # images per calibration step: ORT's min/max pass keeps every activation alive
# ONNX Runtime multiplies uint8 activations by int8 weights, on an x86 CPU without VNNI (AVX2, AVX-512 without VNNI),
# with VPMADDUBSW, which adds pairs of products in int16 and saturates: 2 x 255 x 127 > 32767, and a ReLU6 at 6 is 255.
# Its depthwise kernel widens first. There, the weights of the layers it runs as matrix products get 7 bits (its
# documented workaround, reduce_range) and the depthwise ones keep 8: MobileNetV2 1.0 on 500 ImageNet images, AMD
# EPYC (AVX2), top-1 81.8% -> 88.4% (float 89.8%) (benchmarks/ort_int8_saturation.py, BENCHMARKS.md).
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
# NNCF compiles its PyTorch fake-quantize kernels at first use and gives up after 60 s by default. The compile takes
# 33 s on two idle cores (AMD EPYC); beside other work, or with a second torchrun rank waiting on it, it ran past 60 s
# and a first quantization-aware run on a fresh two-core machine failed. A user's own setting is kept.
NNCF_COMPILE_TIMEOUT_S = 600


@contextlib.contextmanager
def quiet(*loggers: str) -> Iterator[None]:
    """The quantizers' chatter kept off the terminal: their progress bars (printed to stdout, which ``mobilenet``
    keeps for results), and their log lines below errors, on ``loggers`` and on the root logger (ONNX Runtime's
    quantizer logs there, which would also configure Python's logging for the whole process)."""
    named = [logging.getLogger(name) for name in ("", *loggers)]
    levels = [logger.level for logger in named]
    guard = logging.NullHandler()  # a root with a handler is not configured by a stray logging.warning()
    logging.getLogger().addHandler(guard)
    try:
        for logger in named:
            logger.setLevel(logging.ERROR)
        with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
            yield
    finally:
        for logger, level in zip(named, levels, strict=True):
            logger.setLevel(level)
        logging.getLogger().removeHandler(guard)


def check_method(backend: str, method: str | None) -> str:
    """The method to use on ``backend`` (its default for None), or a one-line error listing the choices."""
    choices = METHODS[backend]
    if method is None:
        return choices[0]
    if method not in choices:
        raise ValueError(f"calibration method {method!r} is not offered by {backend}: use one of {', '.join(choices)}")
    return method


def int8_products_saturate() -> bool:
    """Whether ONNX Runtime's uint8 x int8 matrix products can saturate on this CPU: an x86 one without VNNI."""
    flags = cpu_flags()
    x86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")
    return x86 and flags is not None and not flags & VNNI_FLAGS


def matrix_product_weights(source: str | Path) -> dict[str, int]:
    """The weights of a float ONNX file that ONNX Runtime's int8 kernels multiply as matrices (convolutions of
    one group, fully connected layers), each with its output-channel axis."""
    graph = require("onnx", "onnx").load(str(source)).graph
    initializers = {tensor.name for tensor in graph.initializer}
    weights = {}
    for node in graph.node:
        attributes = {attribute.name: attribute.i for attribute in node.attribute}
        if (node.op_type == "Conv" and attributes.get("group", 1) == 1) or node.op_type == "Gemm":
            axis = 1 if node.op_type == "Gemm" and not attributes.get("transB", 0) else 0
            weights |= {name: axis for name in node.input[1:2] if name in initializers}
    return weights


def quantize_onnx(
    source: str | Path,
    target: str | Path,
    calibration: torch.Tensor,
    method: str | None = None,
    seven_bit_products: bool | None = None,
) -> None:
    """Write ``source`` (a float ONNX file) as a QDQ int8 file at ``target``, calibrated on a batch.

    Weights int8 per output channel, activations uint8 (the combination x86 VNNI runs fastest). With
    ``seven_bit_products`` (None: where :func:`int8_products_saturate` on this CPU) the weights of
    :func:`matrix_product_weights` use 7 bits, so that no product saturates.
    """
    quantization = require("onnxruntime.quantization", "onnx")
    if seven_bit_products is None:
        seven_bit_products = int8_products_saturate()
    products = matrix_product_weights(source) if seven_bit_products else {}
    overrides = {name: [{"axis": axis, "reduce_range": True}] for name, axis in products.items()}
    method = check_method("onnxruntime", method)
    methods = quantization.CalibrationMethod
    calibrate = {"minmax": methods.MinMax, "percentile": methods.Percentile}[method]

    class Reader(quantization.CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(calibration.split(CALIBRATION_BATCH))

        def get_next(self) -> dict[str, Any] | None:
            batch = next(self.batches, None)
            return None if batch is None else {"images": batch.numpy()}

    with quiet("onnxruntime"):
        quantization.quantize_static(
            str(source), str(target), Reader(), quant_format=quantization.QuantFormat.QDQ, per_channel=True,
            activation_type=quantization.QuantType.QUInt8, weight_type=quantization.QuantType.QInt8,
            calibrate_method=calibrate, extra_options={"CalibPercentile": 99.999, "TensorQuantOverrides": overrides},
        )  # fmt: skip


def require_nncf(module: str = "nncf") -> Any:
    """NNCF (or ``module`` of it), with time to compile its PyTorch kernels on a small machine."""
    os.environ.setdefault("NNCF_EXTENSION_LOAD_TIMEOUT", str(NNCF_COMPILE_TIMEOUT_S))
    return require(module, "openvino")


def quantize_nncf(model: Any, calibration: torch.Tensor, method: str | None = None) -> Any:
    """An int8 copy of a model, calibrated by NNCF on a batch: an ``openvino.Model`` for inference, or a
    PyTorch module, which comes back with fake-quantize hooks for quantization-aware training.

    NNCF quantizes convolution weights per output channel and applies its fast bias correction.
    An OpenVINO model must come from ``openvino.convert_model``: a graph read as it is from ONNX keeps
    its depthwise weights behind a reshape, and NNCF then leaves those convolutions in float.
    """
    nncf = require_nncf()
    method = check_method("openvino", method)
    advanced = None
    if method != "nncf_default":
        from nncf.quantization.range_estimator import RangeEstimatorParametersSet

        estimator = {
            "minmax": RangeEstimatorParametersSet.MINMAX,
            "percentile": RangeEstimatorParametersSet.MEAN_QUANTILE,
            "histogram": RangeEstimatorParametersSet.HISTOGRAM,
        }[method]
        advanced = nncf.AdvancedQuantizationParameters(activations_range_estimator_params=estimator)
    batches = list(calibration.split(CALIBRATION_BATCH))
    dataset = nncf.Dataset(batches, (lambda batch: batch) if isinstance(model, nn.Module) else torch.Tensor.numpy)
    with quiet("nncf"):
        return nncf.quantize(model, dataset, subset_size=len(batches), advanced_parameters=advanced)
