"""Same weights, same logits as torchvision's and timm's implementations (test-only references)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import mobilenet
from mobilenet.weights.foreign import timm_to_torchvision
from mobilenet.weights.load import load_state_dict

pytestmark = pytest.mark.reference


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


def test_timm_checkpoint_file_loads_by_name(timm, tmp_path) -> None:
    reference = randomize_norms(timm.create_model("mobilenetv2_075"))
    path = tmp_path / "timm.pth"
    torch.save(reference.state_dict(), path)
    ours = mobilenet.create_model("mobilenet_v2_075", weights=path).eval()
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        assert (ours(x) - reference(x)).abs().max() < 1e-4


def test_features_match_torchvision_stages(torchvision_models) -> None:
    reference = randomize_norms(torchvision_models.mobilenet_v2())
    ours = mobilenet.create_model("mobilenet_v2", features_only=True).eval()
    ours.load_state_dict({k: v for k, v in reference.state_dict().items() if k.startswith("features.")})
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        maps = ours(x)
        torch.testing.assert_close(maps[-1], reference.features(x))
        torch.testing.assert_close(maps[2], reference.features[:7](x))
