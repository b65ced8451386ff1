"""The networks' structure: tables, widths, switches, feature maps and dilation."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

import mobilenet
from mobilenet.nn.blocks import InvertedResidual
from mobilenet.nn.config import SHORTCUTS, ModelConfig
from mobilenet.nn.features import FeatureInfo, MobileNetFeatures
from mobilenet.nn.layers import Conv2dSame, make_divisible, tf_same_pad
from mobilenet.nn.model import MobileNet
from mobilenet.nn.tables import MOBILENET_V1, MOBILENET_V2
from tests.helpers.models import trained_like

# Table 2 of the MobileNetV2 paper, (t, c, n, s) per row after the stem (conv2d to 32, stride 2), before the
# 1x1 conv to 1280; written out here so that expected numbers come from the paper, not from our tables.
PAPER_TABLE_2 = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


def blocks(model: MobileNet) -> list[InvertedResidual]:
    return [m for m in model.features if isinstance(m, InvertedResidual)]


@pytest.mark.parametrize(
    ("value", "expected"),
    [(32 * 0.35, 16), (16 * 0.35, 8), (24 * 0.35, 8), (96 * 0.35, 32), (1280 * 1.4, 1792), (32 * 1.3, 40), (3, 8)],
)
def test_make_divisible_rounds_like_the_references(value: float, expected: int) -> None:
    assert make_divisible(value) == expected
    assert make_divisible(value) >= 0.9 * value


def test_tables_are_the_papers() -> None:
    assert [(r.t, r.c, r.n, r.s) for r in MOBILENET_V2.rows] == PAPER_TABLE_2
    assert sum(r.n for r in MOBILENET_V1.rows) == 13  # 13 depthwise-separable blocks
    with pytest.raises(AttributeError):
        MOBILENET_V2.rows[0].c = 32  # frozen


def test_v2_blocks_follow_table_2() -> None:
    model = mobilenet.mobilenet_v2()
    ir = blocks(model)
    assert len(ir) == 17
    assert ir[0].expand_ratio == 1 and len(ir[0].conv) == 3  # t = 1: no expansion conv
    assert all(len(b.conv) == 4 for b in ir[1:])
    # Shortcut only when stride 1 and channels are kept: 10 of the 17 blocks.
    assert [b.use_res_connect for b in ir].count(True) == 10
    for b in ir:
        assert b.use_res_connect == (b.stride == 1 and b.in_channels == b.out_channels)
        assert isinstance(b.conv[-1], nn.BatchNorm2d)  # linear bottleneck: no activation after projection
        dw = b.conv[-3][0]
        assert dw.groups == dw.in_channels == dw.out_channels and dw.kernel_size == (3, 3)
    assert model.features[-1][0].out_channels == 1280


def test_v1_is_13_depthwise_separable_blocks_with_relu6() -> None:
    model = mobilenet.mobilenet_v1()
    ds = blocks(model)
    assert len(ds) == 13
    assert not any(b.use_res_connect for b in ds)
    assert all(isinstance(b.conv[-1], nn.ReLU6) for b in ds)
    assert model.num_features == 1024
    assert model(torch.randn(1, 3, 224, 224)).shape == (1, 1000)


@pytest.mark.parametrize("name", mobilenet.list_models("mobilenet_*"))
def test_every_registered_model_runs(name: str) -> None:
    model = mobilenet.create_model(name, num_classes=7).eval()
    assert model(torch.randn(2, 3, 96, 96)).shape == (2, 7)


def test_width_rounds_channels_and_keeps_1280_head() -> None:
    small = mobilenet.mobilenet_v2(width_mult=0.35)
    assert small.features[0][0].out_channels == 16
    assert small.num_features == 1280  # the last conv is 1280 * max(1, alpha)
    assert mobilenet.mobilenet_v2(width_mult=1.4).num_features == 1792
    odd = mobilenet.mobilenet_v2(width_mult=0.6)  # any alpha > 0 builds
    assert all(m.out_channels % 8 == 0 for m in odd.modules() if isinstance(m, nn.Conv2d) and m.groups == 1)


@pytest.mark.parametrize("bad", [0, -0.5, float("nan"), float("inf")])
def test_bad_width_is_a_clear_error(bad: float) -> None:
    with pytest.raises(ValueError, match="width_mult must be a number > 0"):
        mobilenet.mobilenet_v2(width_mult=bad)


@pytest.mark.parametrize("size", [224, 160, 97, 32])
def test_any_resolution_from_32(size: int) -> None:
    assert mobilenet.mobilenet_v2().eval()(torch.randn(1, 3, size, size + 8)).shape == (1, 1000)


def test_too_small_or_wrong_input_is_a_clear_error() -> None:
    model = mobilenet.mobilenet_v2()
    with pytest.raises(ValueError, match=r"too small .* at least 32x32"):
        model(torch.randn(1, 3, 31, 64))
    with pytest.raises(ValueError, match=r"expected a batch of shape \(N, 3, H, W\)"):
        model(torch.randn(1, 1, 64, 64))


def test_activation_switch() -> None:
    relu = mobilenet.mobilenet_v2(activation="relu")
    acts = {type(m) for m in relu.modules() if isinstance(m, nn.ReLU | nn.ReLU6)}
    assert acts == {nn.ReLU}
    with pytest.raises(ValueError, match="unknown activation"):
        mobilenet.mobilenet_v2(activation="gelu")


def test_conv_classifier_equals_linear_with_the_same_weights() -> None:
    linear = mobilenet.mobilenet_v2(width_mult=0.5).eval()
    conv = mobilenet.mobilenet_v2(width_mult=0.5, classifier="conv").eval()
    state = linear.state_dict()
    state["classifier.1.weight"] = state["classifier.1.weight"][:, :, None, None]
    conv.load_state_dict(state)
    assert isinstance(conv.classifier[1], nn.Conv2d)
    x = torch.randn(2, 3, 96, 96)
    torch.testing.assert_close(conv(x), linear(x))


def test_dropout_rate_and_classes() -> None:
    model = mobilenet.mobilenet_v2(dropout=0.5, num_classes=10)
    assert model.classifier[0].p == 0.5 and model.classifier[1].out_features == 10
    with pytest.raises(ValueError, match="dropout"):
        mobilenet.mobilenet_v2(dropout=1.5)


def test_ablation_relu6_on_the_bottleneck() -> None:
    model = mobilenet.mobilenet_v2(linear_bottleneck=False)
    assert all(isinstance(b.conv[-1], nn.ReLU6) for b in blocks(model))
    # Same parameters: the ablation changes the function, not the shapes.
    assert model.state_dict().keys() == mobilenet.mobilenet_v2().state_dict().keys()


def test_ablation_without_shortcut_changes_the_output() -> None:
    torch.manual_seed(0)
    with_shortcut = mobilenet.mobilenet_v2(width_mult=0.5).eval()
    without = mobilenet.mobilenet_v2(width_mult=0.5, shortcut=False).eval()
    without.load_state_dict(with_shortcut.state_dict())
    assert not any(b.use_res_connect for b in blocks(without))
    x = torch.randn(1, 3, 96, 96)
    # Compare the feature maps, relative to their scale (a fresh model's logits are ~1e-9).
    a, b = with_shortcut.forward_features(x), without.forward_features(x)
    assert (a - b).abs().max() > 0.1 * a.abs().max()
    block = blocks(with_shortcut)[2]  # stride 1, 16 -> 16 channels at width 0.5: has the shortcut
    assert block.use_res_connect
    y = torch.randn(1, 16, 8, 8)
    torch.testing.assert_close(block(y), y + block.conv(y))


@pytest.mark.parametrize("width", [1.0, 0.35])
def test_ablation_shortcut_between_expansions(width: float) -> None:
    """Figure 6b's middle variant: the same parameters, the residual moved around the narrow bottleneck."""
    torch.manual_seed(0)
    variants = {kind: mobilenet.mobilenet_v2(width_mult=width, shortcut=kind).eval() for kind in SHORTCUTS}
    counts = {kind: sum(p.numel() for p in model.parameters()) for kind, model in variants.items()}
    assert len(set(counts.values())) == 1
    state = trained_like(variants["bottleneck"]).state_dict()
    for model in variants.values():
        model.load_state_dict(state)
    expansion = blocks(variants["expansion"])
    # As many joins as the bottleneck shortcut has, one block later: Table 2's 10 for V2.
    assert (
        sum(b.passes_expansion for b in expansion)
        == 10
        == sum(b.use_res_connect for b in blocks(variants["bottleneck"]))
    )
    assert not any(b.use_res_connect for b in expansion)
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        outputs = {kind: model.forward_features(x) for kind, model in variants.items()}
        # Computed by hand: each linked block's depthwise output is added to the next block's expansion.
        h, carry = variants["expansion"].features[0](x), None
        for block in expansion:
            expanded = block.conv[0](h) if block.has_expansion else h
            expanded = expanded if carry is None else expanded + carry
            filtered = block.conv[int(block.has_expansion)](expanded)
            h = block.conv[int(block.has_expansion) + 1 :](filtered)
            carry = filtered if block.passes_expansion else None
        by_hand = variants["expansion"].features[-1](h)
    torch.testing.assert_close(outputs["expansion"], by_hand)
    assert outputs["expansion"].shape == outputs["bottleneck"].shape == outputs["none"].shape
    for a, b in itertools.combinations(outputs.values(), 2):
        assert (a - b).abs().max() > 0.01 * a.abs().max()  # after the head conv squashes them
    # Feature taps see the same wiring.
    taps = mobilenet.create_model("mobilenet_v2", width_mult=width, shortcut="expansion", features_only=True)
    taps.load_state_dict(state, strict=False)
    with torch.no_grad():
        torch.testing.assert_close(taps.eval()(x)[-1], outputs["expansion"])
    assert mobilenet.mobilenet_v2(shortcut=True).config.shortcut == "bottleneck"  # the old bool spelling
    with pytest.raises(ValueError, match="shortcut must be one of"):
        mobilenet.mobilenet_v2(shortcut="expansions")


def test_norm_settings_and_input_channels() -> None:
    model = mobilenet.mobilenet_v2(bn_eps=1e-3, bn_momentum=0.003, in_chans=1)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(n.eps == 1e-3 and n.momentum == 0.003 for n in norms)
    assert model(torch.randn(2, 1, 64, 64)).shape == (2, 1000)


@pytest.mark.parametrize(("size", "stride", "expected"), [(224, 2, (0, 1)), (225, 2, (1, 1)), (7, 1, (1, 1))])
def test_tf_same_padding(size: int, stride: int, expected: tuple[int, int]) -> None:
    assert tf_same_pad(size, 3, stride, 1) == expected


def test_tf_same_conv_pads_after_on_even_inputs() -> None:
    model = mobilenet.mobilenet_v2(padding="tf_same")
    strided = [m for m in model.modules() if isinstance(m, Conv2dSame)]
    assert len(strided) == 5  # the stem and the four stride-2 depthwise convs
    conv = strided[0]
    x = torch.randn(1, 3, 32, 32)
    expected = nn.functional.conv2d(nn.functional.pad(x, (0, 1, 0, 1)), conv.weight, stride=2)
    torch.testing.assert_close(conv(x), expected)
    assert model.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 1000)


def test_forward_features_head_and_reset_classifier() -> None:
    model = mobilenet.mobilenet_v2().eval()
    x = torch.randn(2, 3, 128, 128)
    features = model.forward_features(x)
    assert features.shape == (2, 1280, 4, 4)
    torch.testing.assert_close(model.forward_head(features), model(x))
    assert model.forward_head(features, pre_logits=True).shape == (2, 1280)
    model.reset_classifier(5)
    assert model(x).shape == (2, 5) and model.config.num_classes == 5
    model.reset_classifier(0)
    assert model(x).shape == (2, 1280)


# The "bottleneck" taps (timm's default feature_location): the output of the last block of each stride, then
# the last bottleneck (Table 2's 320 row, which DeepLab reads) and V2's final 1x1 conv. V1 has no 1x1 conv.
EXPECTED_FEATURES = {
    "mobilenet_v2": ([16, 24, 32, 96, 320, 1280], [2, 4, 8, 16, 32, 32]),
    "mobilenet_v1": ([64, 128, 256, 512, 1024], [2, 4, 8, 16, 32]),
}


@pytest.mark.parametrize("arch", ["mobilenet_v2", "mobilenet_v1"])
@pytest.mark.parametrize("width", [0.5, 1.0])
@pytest.mark.parametrize("output_stride", [8, 16, 32])
@pytest.mark.parametrize("size", [224, 200])
def test_features_only_shapes(arch: str, width: float, output_stride: int, size: int) -> None:
    model = mobilenet.create_model(arch, width_mult=width, features_only=True, output_stride=output_stride).eval()
    channels, reductions = EXPECTED_FEATURES[arch]
    expected_channels = [c if c in (1280,) else make_divisible(c * width) for c in channels]
    assert [f.num_chs for f in model.feature_info] == expected_channels
    assert [f.reduction for f in model.feature_info] == [min(r, output_stride) for r in reductions]
    maps = model(torch.randn(1, 3, size, size))
    for feature, info in zip(maps, model.feature_info, strict=True):
        side = size
        for _ in range(int(math.log2(info.reduction))):
            side = math.ceil(side / 2)
        assert feature.shape == (1, info.num_chs, side, side)


def test_dilation_keeps_weights_and_early_stages() -> None:
    plain = mobilenet.create_model("mobilenet_v2", features_only=True).eval()
    dilated = mobilenet.create_model("mobilenet_v2", features_only=True, output_stride=8).eval()
    dilated.load_state_dict(plain.state_dict())  # same keys and shapes
    dilations = {m.dilation[0] for m in dilated.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)}
    assert dilations == {1, 2, 4}
    x = torch.randn(1, 3, 128, 128)
    a, b = plain(x), dilated(x)
    for i in range(3):  # up to stride 8 nothing changes
        torch.testing.assert_close(a[i], b[i])
    assert b[-2].shape[-1] == b[-1].shape[-1] == 16 and a[-2].shape[-1] == a[-1].shape[-1] == 4


def test_out_indices_and_pretrained_keys() -> None:
    model = mobilenet.create_model("mobilenet_v2", features_only=True, out_indices=(1, 3))
    assert [f.reduction for f in model.feature_info] == [4, 16]
    assert len(model.features) == 14  # only up to the deepest map asked for
    assert len(model(torch.randn(1, 3, 64, 64))) == 2
    full_keys = set(mobilenet.mobilenet_v2().state_dict())
    assert set(model.state_dict()) <= full_keys


def paper_channels(value: float, divisor: int = 8) -> int:
    """TF-slim's ``_make_divisible``, with which the paper's models round ``alpha * c``; written out here."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def paper_expansion_taps(alpha: float) -> list[tuple[int, int]]:
    """(channels, reduction) of TF's ``layer_N/expansion_output`` in the first block of each new stride, then
    of the final 1x1 conv, from Table 2 alone: t times the previous row's rounded c, before the stride."""
    channels, reduction, taps = paper_channels(32 * alpha), 2, []  # the stem: conv2d to 32, stride 2
    for t, c, _n, s in PAPER_TABLE_2:
        if s > 1:
            taps.append((t * channels, reduction))
            reduction *= s
        channels = paper_channels(c * alpha)
    # "we apply width multiplier to all layers except the very last convolutional layer" (for alpha < 1).
    taps.append((paper_channels(1280 * max(1.0, alpha)), reduction))
    return taps


@pytest.mark.parametrize(
    ("alpha", "stride_16_channels", "stride_32_channels"),
    [(0.35, 192, 1280), (0.5, 288, 1280), (0.75, 432, 1280), (1.0, 576, 1280), (1.4, 816, 1792)],
)
def test_expansion_taps_are_what_ssdlite_reads(alpha: float, stride_16_channels: int, stride_32_channels: int) -> None:
    every = mobilenet.create_model("mobilenet_v2", width_mult=alpha, features_only=True, feature_location="expansion")
    info = every.feature_info
    assert list(zip(info.channels(), info.reduction(), strict=True)) == paper_expansion_taps(alpha)
    # TF's ssdlite_mobilenet_v2 reads layer_15/expansion_output (6 * 96 alpha channels) and layer_19 (the 1x1
    # conv). TF counts the stem as layer_1, so its layer_N is our features.{N-1}.
    ssdlite = mobilenet.create_model(
        "mobilenet_v2", width_mult=alpha, features_only=True, feature_location="expansion", out_indices=(-2, -1)
    ).eval()
    assert ssdlite.feature_info.module_name() == ["features.14.conv.0", "features.18"]
    assert ssdlite.feature_info.channels() == [stride_16_channels, stride_32_channels]
    assert ssdlite.feature_info.reduction() == [16, 32]
    with torch.no_grad():
        maps = ssdlite(torch.randn(1, 3, 320, 320))
    assert [tuple(m.shape) for m in maps] == [(1, stride_16_channels, 20, 20), (1, stride_32_channels, 10, 10)]


@pytest.mark.parametrize(
    ("alpha", "bottleneck_channels"), [(0.35, 112), (0.5, 160), (0.75, 240), (1.0, 320), (1.4, 448)]
)
def test_last_bottleneck_is_what_deeplab_reads(alpha: float, bottleneck_channels: int) -> None:
    # DeepLab v3 reads TF's layer_18 (Table 2's last row, 320 alpha channels) at output stride 16: the 160 and
    # 320 rows keep stride 16 and dilate instead.
    assert bottleneck_channels == paper_channels(320 * alpha)
    model = mobilenet.create_model(
        "mobilenet_v2", width_mult=alpha, features_only=True, output_stride=16, out_indices=(-2,)
    ).eval()
    (tap,) = model.feature_info
    assert (tap.module, tap.num_chs, tap.reduction) == ("features.17", bottleneck_channels, 16)
    assert len(model.features) == 18  # the 1x1 conv to 1280 is left out
    # A 3x3 conv padded by its dilation maps n to ceil(n / 2) at stride 2: 513 -> 257 -> 129 -> 65 -> 33.
    with torch.no_grad():
        (feature_map,) = model(torch.randn(1, 3, 513, 513))
    side = math.ceil(513 / 16)
    assert side == 33 and feature_map.shape == (1, bottleneck_channels, side, side)


@pytest.mark.parametrize("location", ["bottleneck", "expansion"])
@pytest.mark.parametrize("output_stride", [32, 8])
def test_every_tap_is_what_a_hook_on_its_module_records(location: str, output_stride: int) -> None:
    torch.manual_seed(0)
    plain = trained_like(MobileNet(width_mult=0.5, output_stride=output_stride))
    tapped = mobilenet.create_model(
        "mobilenet_v2", width_mult=0.5, output_stride=output_stride, features_only=True, feature_location=location
    ).eval()
    tapped.load_state_dict({k: v for k, v in plain.state_dict().items() if k.startswith("features.")})
    modules = dict(plain.named_modules())
    recorded: dict[str, torch.Tensor] = {}
    for name in tapped.feature_info.module_name():
        modules[name].register_forward_hook(lambda _m, _i, output, name=name: recorded.__setitem__(name, output))
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        maps = tapped(x)
        plain_output = plain.forward_features(x)
    assert len(recorded) == len(maps) == len(tapped.feature_info)
    for tap, feature_map in zip(tapped.feature_info, maps, strict=True):
        if tap.location == "expansion":
            # The block's first 1x1 conv + BN + ReLU6, not its input nor its depthwise conv.
            expansion = modules[tap.module]
            assert tap.module.endswith(".conv.0") and expansion[0].kernel_size == (1, 1)
            assert expansion[0].in_channels * 6 == expansion[0].out_channels == tap.num_chs
        torch.testing.assert_close(feature_map, recorded[tap.module])
        assert feature_map.shape == (2, tap.num_chs, 96 // tap.reduction, 96 // tap.reduction)
    # Tapping does not change the computation: the deepest map (the 1x1 conv) is the plain network's.
    torch.testing.assert_close(maps[-1], plain_output)


def test_forward_parts_is_the_block_forward() -> None:
    torch.manual_seed(0)
    model = trained_like(mobilenet.mobilenet_v2(width_mult=0.5))
    x = torch.randn(2, 3, 64, 64)
    checked = []
    with torch.no_grad():
        x = model.features[0](x)
        for block in blocks(model):
            if block.has_expansion:
                output, expanded, _ = block.forward_parts(x)
                torch.testing.assert_close(output, block(x))
                torch.testing.assert_close(expanded, block.conv[0](x))
                checked.append(block.use_res_connect)
            x = block(x)
    assert len(checked) == 16 and checked.count(True) == 10  # every expanding block, with and without shortcut


def test_feature_info_answers_timm_accessors() -> None:
    info = mobilenet.create_model("mobilenet_v2", features_only=True, feature_location="expansion").feature_info
    assert isinstance(info, FeatureInfo)
    # TF's layer_3, layer_5, layer_8 and layer_15 expansion outputs, then layer_19.
    names = ["features.2.conv.0", "features.4.conv.0", "features.7.conv.0", "features.14.conv.0", "features.18"]
    assert info.module_name() == names
    assert info.channels() == [96, 144, 192, 576, 1280]
    assert info.reduction() == [2, 4, 8, 16, 32]
    assert (info.channels(3), info.reduction(3), info.module_name(3)) == (576, 16, "features.14.conv.0")
    assert (info.channels(-1), info.reduction(-1), info.module_name(-1)) == (1280, 32, "features.18")
    assert info.channels([0, 3]) == [96, 576] and info.reduction((0, -1)) == [2, 32]
    assert info.module_name([3, 1]) == ["features.14.conv.0", "features.4.conv.0"]
    bottleneck = mobilenet.create_model("mobilenet_v2", features_only=True).feature_info
    assert bottleneck.module_name() == [f"features.{i}" for i in (1, 3, 6, 13, 17, 18)]
    assert bottleneck.channels() == [16, 24, 32, 96, 320, 1280]
    assert [tap.location for tap in bottleneck] == ["bottleneck"] * 5 + ["head"]


@pytest.mark.parametrize("location", ["bottleneck", "expansion"])
def test_negative_out_indices_count_from_the_end(location: str) -> None:
    every = mobilenet.create_model("mobilenet_v2", features_only=True, feature_location=location).feature_info
    picked = mobilenet.create_model(
        "mobilenet_v2", features_only=True, feature_location=location, out_indices=(-1, 0, -2, len(every) - 1)
    )
    # Network order and no repeats, whatever order (and spelling) the indices were asked in.
    assert tuple(picked.feature_info) == (every[0], every[-2], every[-1])
    assert len(picked(torch.randn(1, 3, 64, 64))) == 3
    shallow = mobilenet.create_model(
        "mobilenet_v2", features_only=True, feature_location=location, out_indices=(-len(every),)
    )
    assert tuple(shallow.feature_info) == (every[0],)
    assert len(shallow.features) == every[0].layer + 1  # nothing deeper than the tap is kept


@pytest.mark.parametrize(
    ("location", "out_indices", "last"),
    [
        ("bottleneck", (6,), 5),
        ("bottleneck", (-7,), 5),
        ("bottleneck", (), 5),
        ("bottleneck", (1.0,), 5),
        ("expansion", (5,), 4),
        ("expansion", (0, -6), 4),
    ],
)
def test_bad_out_indices_are_a_clear_error(location: str, out_indices: tuple, last: int) -> None:
    with pytest.raises(ValueError, match=rf"out_indices must pick from 0\.\.{last}, got"):
        mobilenet.create_model("mobilenet_v2", features_only=True, feature_location=location, out_indices=out_indices)


def test_v1_has_no_expansion_taps_and_locations_are_checked() -> None:
    with pytest.raises(ValueError, match="mobilenet_v1's blocks expand nothing: use feature_location='bottleneck'"):
        mobilenet.create_model("mobilenet_v1", features_only=True, feature_location="expansion")
    with pytest.raises(ValueError, match="feature_location must be 'bottleneck' or 'expansion', got 'depthwise'"):
        mobilenet.create_model("mobilenet_v2", features_only=True, feature_location="depthwise")
    assert isinstance(mobilenet.create_model("mobilenet_v1", features_only=True), MobileNetFeatures)


def test_registry() -> None:
    names = mobilenet.list_models("mobilenet_v2_*")
    assert names == [f"mobilenet_v2_{w}" for w in ("035", "050", "075", "100", "110d", "120d", "130", "140")]
    v1 = [f"mobilenet_v1_{w}" for w in ("025", "050", "075", "100", "100h")]
    assert mobilenet.list_models("mobilenet_v1_*") == v1
    deeper = mobilenet.create_model("mobilenet_v2_120d").config
    assert (deeper.width_mult, deeper.depth_mult, deeper.fixed_stem_head) == (1.2, 1.4, True)
    with pytest.raises(ValueError, match="depth_mult scales MobileNetV2's stages"):
        ModelConfig(arch="mobilenet_v1", depth_mult=1.2)
    assert mobilenet.create_model("mobilenet_v2_075").config.width_mult == 0.75
    with pytest.raises(ValueError, match="unknown model"):
        mobilenet.create_model("resnet50")
    assert isinstance(mobilenet.mobilenet_v2(width_mult=0.5), MobileNet)
    assert ModelConfig().arch == "mobilenet_v2"
