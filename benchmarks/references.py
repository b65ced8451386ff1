"""Test-only: import torchvision's and timm's pure-Python models on the CPU-only torch (and Keras on torch).

torchvision's wheel here is a CUDA build whose C++ operator library does not load on the CPU torch;
importing it then fails where its Python code registers fakes for ``torchvision::nms`` and
``torchvision::qnms``, whose schemas that library would have defined. Defining the two schemas with
``torch.library`` first lets the models and transforms load. timm imports torchvision, so the same
shim serves both. Never part of the library.
"""

from __future__ import annotations

import importlib
import importlib.util
import os

import pytest
import torch

_library = None


def define_missing_ops() -> None:
    global _library
    if _library is not None or torch._C._dispatch_has_kernel("torchvision::nms"):
        return
    _library = torch.library.Library("torchvision", "DEF")  # kept alive: the schemas live with it
    _library.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _library.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")


def _import(name: str):
    for package in ("torchvision", name):
        if importlib.util.find_spec(package) is None:
            pytest.skip(f"{package} is not installed (test-only: pip install --no-deps {package})")
    define_missing_ops()
    return importlib.import_module(name)


def import_torchvision():
    return _import("torchvision")


def import_timm():
    return _import("timm")


def import_transformers():
    return _import("transformers")


def import_keras():
    """Keras 3 on its PyTorch backend (the one framework it needs that is already here)."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    if importlib.util.find_spec("keras") is None:
        pytest.skip("keras is not installed (test-only: pip install keras)")
    return importlib.import_module("keras")
