"""BatchNorm folding and ``optimize``: the same outputs as the model they come from, on every variant."""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

import mobilenet
from mobilenet.inference.optimize import bf16_supported, fold_batchnorm, optimize
from mobilenet.nn.layers import Conv2dSame
from tests.helpers.models import trained_like

VARIANTS = {
    "v2": {"width_mult": 0.35},
    "v2 tf_same": {"width_mult": 0.5, "padding": "tf_same", "bn_eps": 1e-3},
    "v2 relu, no linear bottleneck, no shortcut": {"activation": "relu", "linear_bottleneck": False, "shortcut": False},
    "v2 conv classifier, stride 8": {"width_mult": 0.35, "classifier": "conv", "output_stride": 8},
    "v1 tf_same": {"arch": "mobilenet_v1", "width_mult": 0.25, "padding": "tf_same"},
}


@pytest.mark.parametrize("overrides", VARIANTS.values(), ids=VARIANTS.keys())
def test_folded_equals_unfolded(overrides: dict) -> None:
    model = trained_like(mobilenet.create_model("mobilenet_v2", num_classes=10, input_size=64, **overrides))
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert all(m.bias is not None for m in folded.modules() if isinstance(m, nn.Conv2d))
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # the input is left as it was
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-4, atol=1e-4)


def test_folding_keeps_tf_same_padding_and_feature_maps() -> None:
    model = trained_like(mobilenet.create_model("mobilenet_v2", width_mult=0.35, padding="tf_same", features_only=True))
    folded = fold_batchnorm(model)
    strided = [m for m in folded.modules() if isinstance(m, Conv2dSame)]
    assert len(strided) == 5 and all(m.bias is not None for m in strided)
    assert folded.feature_info == model.feature_info
    x = torch.randn(1, 3, 70, 70)  # odd after the first stride: TF padding differs from symmetric here
    with torch.no_grad():
        for ours, theirs in zip(folded(x), model(x), strict=True):
            torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)


def test_folding_a_training_model_uses_running_statistics() -> None:
    model = trained_like(mobilenet.mobilenet_v1(width_mult=0.25, num_classes=5)).train()
    folded = fold_batchnorm(model)
    assert not folded.training and model.training
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model.eval()(x), rtol=1e-4, atol=1e-4)


def test_folding_keeps_a_norms_forward_hooks() -> None:
    """An int8 file's emulation rounds at the BatchNorm that ends a linear projection: folded, it still does."""
    model = mobilenet.mobilenet_v2(width_mult=0.35, num_classes=10, input_size=64).eval()
    projection_norm = model.features[2].conv[3]
    assert isinstance(projection_norm, nn.BatchNorm2d)
    calls = []
    projection_norm.register_forward_hook(lambda _module, _args, output: calls.append(output.shape) or output * 0)
    folded = fold_batchnorm(model)
    assert isinstance(folded.features[2].conv[3], nn.Identity)
    with torch.no_grad():
        zeroed = folded(torch.randn(2, 3, 64, 64))  # nothing of the images gets past the zeroed block
    assert calls == [torch.Size([2, 8, 16, 16])] and torch.equal(zeroed[0], zeroed[1])


def test_optimize_matches_eager_and_keeps_the_metadata() -> None:
    model = trained_like(mobilenet.mobilenet_v2(width_mult=0.5, num_classes=7, padding="tf_same"))
    model.class_names = [f"c{i}" for i in range(7)]
    fast = optimize(model)
    assert fast.class_names == model.class_names and fast.preprocessing == model.preprocessing
    x = torch.randn(3, 3, 96, 96)
    out = fast(x)
    assert out.dtype == torch.float32 and not out.requires_grad
    with torch.no_grad():
        torch.testing.assert_close(out, model(x), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(optimize(model, channels_last=False)(x), out, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(optimize(model, sub_batch=2)(x), out, rtol=1e-5, atol=1e-5)  # slices 2 + 1


def test_optimize_features_only_returns_every_map() -> None:
    model = trained_like(mobilenet.create_model("mobilenet_v2", width_mult=0.35, features_only=True, output_stride=16))
    maps = optimize(model)(torch.randn(1, 3, 64, 64))
    assert [m.shape[1] for m in maps] == [info.num_chs for info in model.feature_info]
    sliced = optimize(model, sub_batch=1)(torch.randn(3, 3, 64, 64))
    assert len(sliced) == len(maps) and all(m.shape[0] == 3 for m in sliced)
    assert all(m.dtype == torch.float32 for m in maps)


@pytest.mark.skipif(not bf16_supported(), reason="this CPU has no native bf16 (AVX512-BF16 or AMX)")
def test_bf16_stays_close_to_fp32() -> None:
    model = trained_like(mobilenet.mobilenet_v2(width_mult=0.5, num_classes=10))
    x = torch.randn(4, 3, 96, 96)
    with torch.no_grad():
        reference = model(x)
    out = optimize(model, bf16=True)(x)
    assert out.dtype == torch.float32
    # bf16 keeps 8 bits of mantissa: a few percent of the logits' spread, layer after layer.
    assert (out - reference).abs().max() < 0.1 * reference.abs().max()


def test_bf16_without_native_support_is_a_clear_error(monkeypatch) -> None:
    # The module itself: `mobilenet.optimize` as an attribute is the re-exported function.
    monkeypatch.setattr(sys.modules["mobilenet.inference.optimize"], "bf16_supported", lambda: False)
    with pytest.raises(ValueError, match=r"no native bf16.*use bf16=False"):
        optimize(mobilenet.mobilenet_v2(width_mult=0.35), bf16=True)


@pytest.mark.slow
def test_compiled_with_freezing_matches_eager() -> None:
    inductor = pytest.importorskip("torch._inductor.config", reason="torch.compile's inductor is not available")
    model = trained_like(mobilenet.mobilenet_v2(width_mult=0.35, num_classes=10, padding="tf_same"))
    fast = optimize(model, compile=True)
    for batch in (1, 2):  # a second batch size compiles again, with a static shape
        x = torch.randn(batch, 3, 64, 64)
        with torch.no_grad():
            torch.testing.assert_close(fast(x), model(x), rtol=1e-3, atol=1e-3)
    assert not inductor.freezing  # patched per call, never left on for everyone else


def test_optimized_model_keeps_the_input_check() -> None:
    with pytest.raises(ValueError, match=r"expected a batch of shape \(N, 3, H, W\)"):
        optimize(mobilenet.mobilenet_v2(width_mult=0.35))(torch.zeros(3, 64, 64))
