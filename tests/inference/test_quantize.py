"""ONNX Runtime's int8 file: where its uint8 x int8 products saturate (x86 without VNNI), the layers it multiplies as
matrices get 7-bit weights and the depthwise ones keep 8 (the real-image check is in test_deploy.py)."""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np
import pytest
import torch

import mobilenet
from mobilenet.inference.export import onnx_proto
from mobilenet.inference.optimize import fold_batchnorm
from mobilenet.runtimes import quantize
from mobilenet.runtimes.quantize import int8_products_saturate, matrix_product_weights, quantize_onnx
from tests.helpers.models import trained_like


@pytest.fixture(scope="module")
def float_onnx(tmp_path_factory) -> tuple[torch.nn.Module, Path]:
    onnx = pytest.importorskip("onnx", reason="needs onnx: pip install 'mobilenet[onnx]'")
    pytest.importorskip("onnxscript", reason="the graph goes through ONNX: pip install 'mobilenet[onnx]'")
    model = trained_like(mobilenet.mobilenet_v2(width_mult=0.35, num_classes=10, input_size=64)).eval()
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    onnx.save(onnx_proto(fold_batchnorm(model), torch.randn(2, 3, 64, 64)), path)
    return model, path


@pytest.mark.parametrize(
    ("machine", "flags", "saturate"),
    [
        ("x86_64", {"avx2", "fma"}, True),  # AVX2 only: VPMADDUBSW
        ("x86_64", {"avx2", "avx512f", "avx512bw"}, True),  # AVX-512 without VNNI: still VPMADDUBSW
        ("x86_64", {"avx2", "avx512f", "avx512_vnni"}, False),
        ("x86_64", {"avx2", "avx_vnni"}, False),
        ("aarch64", {"asimd", "asimddp"}, False),
        ("x86_64", None, False),  # flags unknown (not Linux): the file as everywhere else
    ],
)
def test_saturation_is_decided_by_the_instruction_set(monkeypatch, machine: str, flags, saturate: bool) -> None:
    monkeypatch.setattr(platform, "machine", lambda: machine)
    monkeypatch.setattr(quantize, "cpu_flags", lambda: None if flags is None else frozenset(flags))
    assert int8_products_saturate() is saturate


def test_matrix_product_weights_are_the_convolutions_of_one_group_and_the_classifier(float_onnx) -> None:
    model, path = float_onnx
    weights = matrix_product_weights(path)
    modules = dict(fold_batchnorm(model).named_modules())
    convolutions = {name: m.groups for name, m in modules.items() if isinstance(m, torch.nn.Conv2d)}
    linear = [name for name, m in modules.items() if isinstance(m, torch.nn.Linear)]
    # The exported weights keep the module names: every convolution of one group and the classifier, no depthwise.
    assert set(weights) == {f"{name}.weight" for name, groups in convolutions.items() if groups == 1} | {
        f"{name}.weight" for name in linear
    }
    assert any(groups > 1 for groups in convolutions.values())
    assert set(weights.values()) == {0}  # the output channels: Conv's first axis, and Gemm's (transB)


@pytest.mark.parametrize("seven_bit", [False, True])
def test_seven_bit_products_keep_every_matrix_weight_within_64(float_onnx, tmp_path, seven_bit: bool) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    _, path = float_onnx
    quantize_onnx(path, tmp_path / "int8.onnx", torch.rand(20, 3, 64, 64) * 4 - 2, seven_bit_products=seven_bit)
    graph = onnx.load(tmp_path / "int8.onnx").graph
    # Each weight is stored as "<its name>_quantized" in int8; the largest value it reaches, over its channels.
    reach = {
        tensor.name.removesuffix("_quantized"): int(np.abs(numpy_helper.to_array(tensor).astype(int)).max())
        for tensor in graph.initializer
        if tensor.name.endswith(".weight_quantized")
    }
    products = matrix_product_weights(path)
    assert set(products) < set(reach)  # the depthwise weights are the rest
    largest = 64 if seven_bit else 127
    assert {reach[name] for name in products} == {largest}  # per channel, the largest weight at the range's end
    assert {reach[name] for name in set(reach) - set(products)} == {127}  # depthwise: 8 bits either way
