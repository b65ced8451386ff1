"""Streaming inference (MobileNetV2 paper, Section 5): equal outputs in channel groups, and less memory held at once."""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest
import torch
from torch import nn

from mobilenet.complexity.activations import peak_live_bytes
from mobilenet.nn.blocks import InvertedResidual
from mobilenet.nn.config import LayerStyle
from mobilenet.nn.model import MobileNet
from mobilenet.nn.streaming import StreamingInvertedResidual, streaming_model
from mobilenet.registry import create_model
from tests.helpers.models import trained_like

GROUPS = [1, 2, 4, 8, 5, 7]  # 5 and 7 divide none of the expanded widths: unequal groups


@cache
def plain(width_mult: float, **overrides: Any) -> MobileNet:
    torch.manual_seed(0)
    return trained_like(create_model("mobilenet_v2", width_mult=width_mult, **overrides))  # type: ignore[return-value]


def assert_same_outputs(model: MobileNet, groups: int, size: int = 96) -> None:
    """Feature maps and logits of the streaming copy equal the plain model's, up to float rounding."""
    dtype = model.classifier[-1].weight.dtype
    streamed = streaming_model(model, groups)
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1), dtype=dtype)
    tolerance = 1e-5 if dtype == torch.float32 else 1e-12
    with torch.inference_mode():
        for method in ("forward_features", "forward"):
            expected, got = getattr(model, method)(x), getattr(streamed, method)(x)
            assert got.shape == expected.shape
            assert (got - expected).abs().max() <= tolerance * expected.abs().max(), (method, groups)


@pytest.mark.parametrize("groups", GROUPS)
@pytest.mark.parametrize("width_mult", [1.0, 0.35])
def test_matches_the_plain_model(width_mult: float, groups: int) -> None:
    assert_same_outputs(plain(width_mult), groups)


@pytest.mark.parametrize(
    "overrides",
    [
        {"padding": "tf_same"},
        {"linear_bottleneck": False},
        {"activation": "relu"},
        {"output_stride": 16},
        {"output_stride": 8, "padding": "tf_same", "activation": "relu", "linear_bottleneck": False},
    ],
    ids=lambda overrides: "-".join(f"{key}={value}" for key, value in overrides.items()),
)
@pytest.mark.parametrize("groups", [3, 8])
def test_matches_with_every_switch(overrides: dict[str, Any], groups: int) -> None:
    # 97: an odd size, where TF "SAME" pads a strided conv differently than on an even one.
    assert_same_outputs(plain(0.35, **overrides), groups, size=97)


def test_is_exact_up_to_rounding_in_float64() -> None:
    model = create_model("mobilenet_v2", width_mult=0.35).double()
    assert_same_outputs(trained_like(model), 5)  # type: ignore[arg-type]


def test_streams_the_stem_with_the_first_block_and_keeps_layer_names() -> None:
    model = plain(0.35)
    streamed = streaming_model(model, 4)
    assert isinstance(streamed.features[0], StreamingInvertedResidual)
    assert isinstance(streamed.features[1], nn.Identity)
    assert streamed.features[0].hidden_channels == model.features[0].out_channels  # the stem's 16 channels
    for index, layer in enumerate(model.features):
        if isinstance(layer, InvertedResidual) and layer.has_expansion:
            assert isinstance(streamed.features[index], StreamingInvertedResidual)
    assert type(streamed.features[-1]) is type(model.features[-1])  # the head conv stays plain
    assert [name for name, _ in streamed.named_children()] == [name for name, _ in model.named_children()]


def test_unequal_groups_cover_every_channel() -> None:
    block = InvertedResidual(16, 24, 2, 6, LayerStyle()).eval()
    streamed = StreamingInvertedResidual(block, 7)
    sizes = [group.projection.in_channels for group in streamed.channel_groups]
    assert sum(sizes) == 96 and max(sizes) - min(sizes) == 1
    assert [group.depthwise.groups for group in streamed.channel_groups] == sizes
    with pytest.raises(ValueError, match="groups must be between 1 and the 96"):
        StreamingInvertedResidual(block, 97)


def test_shares_nothing_with_the_original() -> None:
    model = plain(0.35)
    streamed = streaming_model(model, 2)
    original = {tensor.untyped_storage().data_ptr() for tensor in model.state_dict().values()}
    copied = {tensor.untyped_storage().data_ptr() for tensor in streamed.state_dict().values()}
    assert not original & copied
    assert model.training is False and all(p.requires_grad for p in model.parameters())


def test_refuses_training_and_autograd() -> None:
    streamed = streaming_model(plain(0.35), 2)
    x = torch.randn(1, 3, 96, 96)
    with pytest.raises(RuntimeError, match=r"inference only: call it under torch.no_grad\(\)"):
        streamed(x)
    streamed.train()
    with torch.no_grad(), pytest.raises(RuntimeError, match=r"inference only: call .eval\(\) first"):
        streamed(x)


def test_refuses_mobilenet_v1() -> None:
    with pytest.raises(ValueError, match="mobilenet_v1 has no expanding block"):
        streaming_model(create_model("mobilenet_v1", width_mult=0.25), 2)  # type: ignore[arg-type]


def test_peak_live_bytes_by_hand() -> None:
    def chain(x: torch.Tensor) -> torch.Tensor:
        doubled = x * 2  # + 4000 bytes: 8000
        shifted = doubled + 1  # + 4000: 12000, the peak
        del doubled  # - 4000
        head = shifted[:10]  # a view: nothing new, and it keeps all of shifted's storage alive
        del shifted
        scratch = torch.empty(750)  # + 3000: 11000
        del scratch
        head.mul_(3)  # in place: nothing new
        return head.sum()  # + 4

    assert peak_live_bytes(chain, torch.ones(1000)) == 12_000
    assert peak_live_bytes(lambda x: None, torch.ones(10)) == 40  # the arguments count
    weight = torch.ones(10)
    assert peak_live_bytes(lambda x: x + weight.t(), torch.ones(10)) == 80  # a view of a weight is not new


def test_peak_memory_drops_with_groups() -> None:
    model = plain(1.0)
    x = torch.randn(1, 3, 96, 96)
    with torch.inference_mode():
        peaks = [peak_live_bytes(model, x)] + [peak_live_bytes(streaming_model(model, k), x) for k in (1, 2, 4, 8)]
    assert peaks == sorted(peaks, reverse=True) and len(set(peaks)) == len(peaks), peaks
    # Any plain forward holds at once the image, the first expanding block's input and its whole expansion (96
    # channels at 48x48), which streaming never does.
    floor = 3 * 96 * 96 * 4 + 16 * 48 * 48 * 4 + 96 * 48 * 48 * 4
    assert peaks[0] >= floor > 2 * peaks[-1]


def test_the_expansion_shortcut_ablation_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot be split into groups"):
        streaming_model(create_model("mobilenet_v2", width_mult=0.35, shortcut="expansion"), 2)  # type: ignore[arg-type]
