"""int8 post-training static quantization: per-channel int8 weights, uint8 activations from calibration.

Two paths, both from the BatchNorm-folded ONNX graph: ONNX Runtime's QDQ quantizer, and OpenVINO's
NNCF, which also calibrates PyTorch modules for quantization-aware training (``mobilenet.training.qat``). The
calibration method decides how each activation's range is read from the calibration batch.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

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


def quantize_onnx(source: str | Path, target: str | Path, calibration: torch.Tensor, method: str | None = None) -> None:
    """Write ``source`` (a float ONNX file) as a QDQ int8 file at ``target``, calibrated on a batch.

    Weights int8 per output channel, activations uint8 (the combination x86 VNNI runs fastest).
    """
    quantization = require("onnxruntime.quantization", "onnx")
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
            calibrate_method=calibrate, extra_options={"CalibPercentile": 99.999},
        )  # fmt: skip


def quantize_nncf(model: Any, calibration: torch.Tensor, method: str | None = None) -> Any:
    """An int8 copy of a model, calibrated by NNCF on a batch: an ``openvino.Model`` for inference, or a
    PyTorch module, which comes back with fake-quantize hooks for quantization-aware training.

    NNCF quantizes convolution weights per output channel and applies its fast bias correction.
    An OpenVINO model must come from ``openvino.convert_model``: a graph read as it is from ONNX keeps
    its depthwise weights behind a reshape, and NNCF then leaves those convolutions in float.
    """
    nncf = require("nncf", "openvino")
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
