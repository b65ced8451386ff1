"""Multi-scale and flipped inference (Table 7's "MF"): against a hand computation on a small DeepLab, and through
the commands."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mobilenet.registry import create_model
from mobilenet.segmentation.multiscale import multi_scale, scaled_size
from mobilenet.segmentation.predict import model_predictor, segment
from tests.helpers.data import write_images
from tests.helpers.models import trained_like
from tests.helpers.runs import cli


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    model = create_model("deeplabv3_mobilenet_v2", width_mult=0.35, num_classes=4, input_size=65)
    with torch.no_grad():  # logits that differ between classes, as a trained model's do
        model.logits.weight.normal_(0, 1)
    return trained_like(model)


def test_scaled_sizes_are_deeplabs() -> None:
    assert [scaled_size(513, s) for s in (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)] == [257, 385, 513, 641, 769, 897]


def test_equals_a_hand_computation(model) -> None:
    """Each scale resized with corners aligned, each mirrored run mirrored back, the softmaxes averaged."""
    pixels = (torch.rand(2, 3, 65, 65) * 255).round()
    plain = model_predictor(model)
    with torch.no_grad():
        expected = torch.zeros(2, 4, 65, 65)
        for scale in (0.5, 1.0, 1.5):
            side = int(64 * scale + 1)
            resized = F.interpolate(pixels, size=(side, side), mode="bilinear", align_corners=True)
            for mirrored in (False, True):
                logits = plain(resized.flip(-1) if mirrored else resized)
                logits = logits.flip(-1) if mirrored else logits
                logits = F.interpolate(logits, size=(65, 65), mode="bilinear", align_corners=True)
                expected += logits.softmax(1) / 6
        found = multi_scale(plain, (0.5, 1.0, 1.5), flip=True)(pixels)
        alone = plain(pixels).softmax(1)
    torch.testing.assert_close(found, expected)
    assert (found - alone).abs().max() > 1e-2  # the other scales and the mirror do change the probabilities


def test_one_scale_without_flip_is_the_plain_prediction(model) -> None:
    image = (torch.rand(3, 50, 70) * 255).to(torch.uint8)
    assert (segment(model, [image])[0] == segment(model, [image], scales=(1.0,))[0]).all()
    assert segment(model, [image], flip=True)[0].shape == (50, 70)


def test_the_commands_take_scales_and_flip(tmp_path, model) -> None:
    from mobilenet.weights import save_weights

    save_weights(model, tmp_path / "w.safetensors")
    write_images(tmp_path / "images", 2, (60, 50))
    base = ["segment", str(tmp_path / "images"), "--weights", str(tmp_path / "w.safetensors"), "--json"]
    done = cli(*base, "--scales", "0.75,1.25", "--flip", "--backend", "torch")
    assert done.returncode == 0, done.stderr
    refused = cli(*base, "--scales", "0.75,1.25", "--backend", "onnxruntime")
    assert refused.returncode != 0 and "add --backend torch" in refused.stderr
    bad = cli(*base, "--scales", "0.5,-1")
    assert bad.returncode == 2 and "must be a finite number > 0" in bad.stderr
