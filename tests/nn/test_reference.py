"""Same weights, same logits as torchvision's and timm's implementations (test-only references)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import mobilenet
from mobilenet.complexity.profile import profile
from mobilenet.nn.config import ModelConfig
from mobilenet.nn.features import MobileNetFeatures
from mobilenet.nn.variants import model_name
from mobilenet.weights.foreign import timm_to_torchvision
from mobilenet.weights.load import load_model, load_state_dict

pytestmark = pytest.mark.reference


def variant_fields(config: ModelConfig) -> dict:
    return {name: getattr(config, name) for name in ("depth_mult", "fixed_stem_head", "head_conv")}


def randomize_norms(model: nn.Module) -> nn.Module:
    """Non-trivial BatchNorm statistics, so that a misplaced norm cannot hide behind the identity."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5, generator=generator)
                m.bias.normal_(0, 0.1, generator=generator)
                m.running_mean.normal_(0, 0.1, generator=generator)
                m.running_var.uniform_(0.5, 1.5, generator=generator)
    return model.eval()


@pytest.mark.parametrize(("width", "size"), [(0.35, 96), (0.5, 128), (0.75, 160), (1.0, 224), (1.3, 192), (1.4, 113)])
def test_torchvision_v2_same_logits(torchvision_models, width: float, size: int) -> None:
    torch.manual_seed(0)
    reference = randomize_norms(torchvision_models.mobilenet_v2(width_mult=width))
    ours = mobilenet.mobilenet_v2(width_mult=width).eval()
    load_state_dict(ours, reference.state_dict())  # the keys are torchvision's, strictly
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        assert (ours(x) - reference(x)).abs().max() < 1e-4


@pytest.mark.parametrize(
    ("name", "ours_name", "size"),
    [
        ("mobilenetv2_050", "mobilenet_v2_050", 160),
        ("mobilenetv2_100", "mobilenet_v2_100", 224),
        ("mobilenetv2_140", "mobilenet_v2_140", 128),
        ("mobilenetv1_100", "mobilenet_v1_100", 192),
        # timm's most accurate: deeper stages with a fixed stem and head, and V1 with a head conv
        ("mobilenetv2_110d", "mobilenet_v2_110d", 224),
        ("mobilenetv2_120d", "mobilenet_v2_120d", 160),
        ("mobilenetv1_100h", "mobilenet_v1_100h", 192),
    ],
)
def test_timm_same_logits_through_the_key_map(timm, name: str, ours_name: str, size: int) -> None:
    torch.manual_seed(0)
    reference = randomize_norms(timm.create_model(name))
    ours = mobilenet.create_model(ours_name).eval()
    load_state_dict(ours, timm_to_torchvision(reference.state_dict()))
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        assert (ours(x) - reference(x)).abs().max() < 1e-4
    counted = profile(ours.config.arch, ours.config.width_mult, size, **variant_fields(ours.config))
    assert counted.params == sum(p.numel() for p in reference.parameters())


def test_timm_checkpoint_file_loads_by_name(timm, tmp_path) -> None:
    reference = randomize_norms(timm.create_model("mobilenetv2_075"))
    path = tmp_path / "timm.pth"
    torch.save(reference.state_dict(), path)
    ours = mobilenet.create_model("mobilenet_v2_075", weights=path).eval()
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        assert (ours(x) - reference(x)).abs().max() < 1e-4


@pytest.mark.parametrize(
    ("name", "arch", "width"),
    [
        ("mobilenetv2_140", "mobilenet_v2", 1.4),
        ("mobilenetv2_120d", "mobilenet_v2", 1.2),
        ("mobilenetv1_125", "mobilenet_v1", 1.25),
    ],
)
def test_timm_hub_folder_loads_with_its_preprocessing(timm, tmp_path, name: str, arch: str, width: float) -> None:
    """timm's Hugging Face Hub layout: model.safetensors under timm's keys, and config.json with pretrained_cfg."""
    from safetensors.torch import save_file

    reference = randomize_norms(timm.create_model(name, pretrained=False))
    save_file(reference.state_dict(), str(tmp_path / "model.safetensors"))
    cfg = dict(reference.pretrained_cfg)  # what timm's push_to_hub writes, for its mobilenetv2_140.ra_in1k
    hub = {"architecture": name, "num_classes": 1000, "pretrained_cfg": cfg}
    (tmp_path / "config.json").write_text(json.dumps(hub, default=list))
    ours = load_model(tmp_path / "model.safetensors").eval()
    ours_name = name.replace("mobilenetv", "mobilenet_v")  # timm's "mobilenetv2_120d" is our "mobilenet_v2_120d"
    assert (ours.config.arch, ours.config.width_mult, model_name(ours.config)) == (arch, width, ours_name)
    pre = ours.preprocessing
    crop = cfg.get("test_crop_pct", cfg["crop_pct"])  # timm evaluates at its test crop where it has one
    assert (pre.interpolation, pre.crop_pct, pre.mean) == (cfg["interpolation"], crop, tuple(cfg["mean"]))
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        assert (ours(x) - reference(x)).abs().max() < 1e-4


def torchvision_stage_indices(features: nn.Sequential) -> list[int]:
    """torchvision's own split of a MobileNet into stages (detection/ssdlite.py, segmentation/deeplabv3.py):
    the stem, every strided block (marked ``_is_cn``), the last layer."""
    return [0] + [i for i, block in enumerate(features) if getattr(block, "_is_cn", False)] + [len(features) - 1]


def test_bottleneck_taps_match_torchvision_stages(torchvision_models) -> None:
    reference = randomize_norms(torchvision_models.mobilenet_v2())
    ours = mobilenet.create_model("mobilenet_v2", features_only=True).eval()
    ours.load_state_dict({k: v for k, v in reference.state_dict().items() if k.startswith("features.")})
    # The output of the layer before each strided block, then the last bottleneck and the 1x1 conv.
    strided, last = torchvision_stage_indices(reference.features)[1:-1], len(reference.features) - 1
    layers = [i - 1 for i in strided] + [last - 1, last]
    assert ours.feature_info.module_name() == [f"features.{i}" for i in layers]
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        maps = ours(x)
        outputs, y = [], x
        for layer in reference.features:
            y = layer(y)
            outputs.append(y)
    for layer, feature_map in zip(layers, maps, strict=True):
        torch.testing.assert_close(feature_map, outputs[layer])


def test_expansion_taps_match_torchvision_ssdlite_split(torchvision_models) -> None:
    from torchvision.models.detection.ssdlite import _mobilenet_extractor  # private: the split itself, test-only

    reference = randomize_norms(torchvision_models.mobilenet_v2())
    ours = mobilenet.create_model(
        "mobilenet_v2", features_only=True, feature_location="expansion", out_indices=(-2, -1)
    ).eval()
    ours.load_state_dict({k: v for k, v in reference.state_dict().items() if k.startswith("features.")})
    # torchvision's SSDLite cuts its backbone inside C4 = stage_indices[-2], after the expansion ``block[0]``
    # (MobileNetV3's name; V2 calls it ``conv``): its maps "0" and "1" are the stride-16 expansion and the
    # 1x1 conv, TF's layer_15/expansion_output and layer_19.
    c4 = torchvision_stage_indices(reference.features)[-2]
    assert ours.feature_info.module_name() == [f"features.{c4}.conv.0", f"features.{len(reference.features) - 1}"]
    reference.features[c4].block = reference.features[c4].conv
    extractor = _mobilenet_extractor(reference, trainable_layers=0, norm_layer=nn.BatchNorm2d).eval()
    x = torch.randn(1, 3, 320, 320)
    with torch.no_grad():
        maps, expected = ours(x), extractor(x)
    assert [tuple(m.shape) for m in maps] == [(1, 576, 20, 20), (1, 1280, 10, 10)]
    torch.testing.assert_close(maps[0], expected["0"])
    torch.testing.assert_close(maps[1], expected["1"])


def test_timm_feature_taps_where_they_overlap(timm) -> None:
    torch.manual_seed(0)
    reference = randomize_norms(timm.create_model("mobilenetv2_100", pretrained=False))
    ours = mobilenet.create_model("mobilenet_v2_100").eval()
    load_state_dict(ours, timm_to_torchvision(reference.state_dict()))
    timm_taps, our_taps = {}, {}
    for location in ("bottleneck", "expansion"):
        timm_model = timm.create_model(
            "mobilenetv2_100", features_only=True, feature_location=location, pretrained=False
        )
        timm_model.load_state_dict({k: v for k, v in reference.state_dict().items() if k in timm_model.state_dict()})
        timm_taps[location], our_taps[location] = timm_model.eval(), MobileNetFeatures(ours, None, location).eval()
    # What timm 1.0 gives (EfficientNetFeatures, which drops conv_head, so never the 1x1 conv to 1280):
    # - "bottleneck": the outputs of blocks.0, .1, .2, .4, .6: 16, 24, 32, 96, 320 channels at 2, 4, 8, 16, 32.
    #   Ours are the same five maps, then the 1x1 conv (1280 at 32).
    # - "expansion": a forward-pre hook on the projection (conv_pwl; conv_pw for the t=1 block) of the LAST
    #   block of each stride: its depthwise output, 32, 144, 192, 576, 960 channels at 2, 4, 8, 16, 32. Ours
    #   (TF's expansion_output) is the 1x1 expansion of the FIRST block of the next stride, before its strided
    #   depthwise conv: 96, 144, 192, 576, then the 1x1 conv's 1280. Both are 6x the stride's bottleneck width
    #   at its resolution from reduction 4 to 16, so channels and reductions agree there, but the tensors differ.
    timm_bottleneck, timm_expansion = timm_taps["bottleneck"].feature_info, timm_taps["expansion"].feature_info
    assert timm_bottleneck.channels() == [16, 24, 32, 96, 320] and timm_bottleneck.reduction() == [2, 4, 8, 16, 32]
    assert timm_expansion.channels() == [32, 144, 192, 576, 960] and timm_expansion.reduction() == [2, 4, 8, 16, 32]
    ours_bottleneck, ours_expansion = our_taps["bottleneck"].feature_info, our_taps["expansion"].feature_info
    assert ours_bottleneck.channels()[:5] == timm_bottleneck.channels()
    assert ours_bottleneck.reduction()[:5] == timm_bottleneck.reduction()
    assert ours_bottleneck.channels(5) == 1280 and ours_bottleneck.reduction(5) == 32
    assert ours_expansion.channels([1, 2, 3]) == timm_expansion.channels([1, 2, 3])
    assert ours_expansion.reduction([1, 2, 3]) == timm_expansion.reduction([1, 2, 3])
    assert ours_expansion.channels([0, 4]) == [96, 1280]

    # Numerically, on timm's random weights: the shared bottleneck maps are equal; timm's expansion maps are
    # the depthwise outputs (conv.1, or conv.0 for the t=1 block) of our bottleneck taps' blocks, and ours
    # are our expansion convs applied to timm's bottleneck maps.
    modules, recorded = dict(ours.named_modules()), {}
    depthwise_outputs = []
    for tap in ours_bottleneck[:5]:
        block = modules[tap.module]
        depthwise_outputs.append(f"{tap.module}.conv.{1 if block.has_expansion else 0}")
        modules[depthwise_outputs[-1]].register_forward_hook(
            lambda _m, _i, output, name=depthwise_outputs[-1]: recorded.__setitem__(name, output)
        )
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        timm_maps = {location: timm_taps[location](x) for location in timm_taps}
        our_maps = {location: our_taps[location](x) for location in our_taps}
        for theirs, mine in zip(timm_maps["bottleneck"], our_maps["bottleneck"][:5], strict=True):
            torch.testing.assert_close(mine, theirs)
        for name, theirs in zip(depthwise_outputs, timm_maps["expansion"], strict=True):
            torch.testing.assert_close(recorded[name], theirs)
        for index in range(4):  # the tap's block reads the bottleneck map just before it
            expansion = modules[ours_expansion.module_name(index)]
            torch.testing.assert_close(our_maps["expansion"][index], expansion(timm_maps["bottleneck"][index]))
        for index in (1, 2, 3):  # same shapes, different places
            assert not torch.allclose(our_maps["expansion"][index], timm_maps["expansion"][index])
