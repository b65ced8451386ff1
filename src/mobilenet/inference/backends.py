"""The inference backends, which precisions each runs, and which are installed: torch-free, for the CLI."""

from __future__ import annotations

import importlib.util
import warnings

BACKENDS = ("torch", "onnxruntime", "openvino", "executorch", "eager")
PRECISIONS: dict[str, tuple[str, ...]] = {
    "eager": ("fp32",),  # the model as it is, unfolded: a reference, never chosen by "auto"
    "torch": ("fp32", "bf16"),
    "onnxruntime": ("fp32", "int8"),
    "openvino": ("fp32", "bf16", "int8"),
    "executorch": ("fp32", "int8"),  # XNNPACK: what a phone runs, one image per call
}
# The Python modules each backend needs, and the extra that installs them.
NEEDS = {
    "eager": (),
    "torch": (),
    "onnxruntime": ("onnxruntime", "onnx", "onnxscript"),
    "openvino": ("openvino", "onnx", "onnxscript"),
    "executorch": ("executorch", "torchao"),
}
EXTRA = {"onnxruntime": "onnx", "openvino": "openvino", "executorch": "executorch"}
# backend="auto" takes the first installed backend of each list. The order is measured (MobileNetV2
# 1.0@224 on a 2-core AVX-512 VNNI + bf16 CPU, interleaved; benchmarks/deploy_accuracy.py): in fp32
# ONNX Runtime beats OpenVINO forced to fp32 by 10-25% (b1 and b32) and PyTorch eager by 2-5x; in bf16
# OpenVINO is ~2.4x PyTorch; in int8 the two tie at batch 1 and OpenVINO (NNCF) leads at batch 32 by
# 15-50%, with the better top-1 agreement with fp32.
# ExecuTorch comes last: it runs one image per call, for phones (its speed here: BENCHMARKS.md).
AUTO: dict[str, tuple[str, ...]] = {
    "fp32": ("onnxruntime", "openvino", "torch", "executorch"),
    "bf16": ("openvino", "torch"),
    "int8": ("openvino", "onnxruntime", "executorch"),
}


# Images above which the ONNX Runtime path of "auto" repays its export (see ``backend_for``).
EXPORT_PAYS_OFF = 3000


def available_backends(precision: str = "fp32") -> list[str]:
    """The backends installed here that can run ``precision``, in ``backend="auto"``'s order of preference."""
    check_precision(precision)
    return [name for name in AUTO[precision] if is_installed(name, precision)]


def is_installed(backend: str, precision: str) -> bool:
    needs = NEEDS[backend] + (("nncf",) if backend == "openvino" and precision == "int8" else ())
    return all(importlib.util.find_spec(module) is not None for module in needs)


def check_precision(precision: str) -> None:
    if precision not in AUTO:
        raise ValueError(f"unknown precision {precision!r}: use 'fp32', 'bf16' or 'int8'")


def backend_for(images: int, backend: str = "auto", precision: str = "fp32") -> str:
    """The backend to run ``images`` images on: "auto" takes PyTorch in fp32 when an export would not pay off.

    Exporting to ONNX and building a session costs seconds (measured in BENCHMARKS.md); it repays that only
    over about ``EXPORT_PAYS_OFF`` images, so fewer run on PyTorch (BatchNorm folded) straight away.
    """
    return "torch" if backend == "auto" and precision == "fp32" and images < EXPORT_PAYS_OFF else backend


def pick_backend(backend: str, precision: str) -> str:
    if backend == "auto":
        installed = available_backends(precision)
        if not installed:
            raise ValueError(
                f"no installed backend runs {precision}: pip install 'mobilenet[onnx]' or 'mobilenet[openvino]'"
            )
        best = AUTO[precision][0]
        if installed[0] != best:
            warnings.warn(
                f"{best} is not installed; using {installed[0]}. pip install 'mobilenet[{EXTRA[best]}]' runs "
                f"{precision} faster",
                stacklevel=3,
            )
        return installed[0]
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}: use 'auto' or one of {', '.join(BACKENDS)}")
    if precision not in PRECISIONS[backend]:
        others = [name for name in BACKENDS if precision in PRECISIONS[name]]
        raise ValueError(f"{backend} does not run {precision} here: use backend {' or '.join(others)}")
    if not is_installed(backend, precision):
        missing = next(m for m in NEEDS[backend] + ("nncf",) if importlib.util.find_spec(m) is None)
        raise ImportError(f"backend {backend!r} needs {missing}: pip install 'mobilenet[{EXTRA[backend]}]'")
    return backend
