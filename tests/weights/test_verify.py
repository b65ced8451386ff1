"""`mobilenet verify`: each format read and run beside the framework that wrote it, and a wrong reading caught."""

from __future__ import annotations

import json

import pytest
import torch
from benchmarks.references import import_timm, import_torchvision, import_transformers

from mobilenet.registry import create_model
from mobilenet.weights import save_weights
from mobilenet.weights.verify import verify
from tests.helpers.data import shared_path
from tests.helpers.models import trained_like
from tests.helpers.runs import cli


@pytest.mark.reference
def test_state_dicts_agree_with_timm_and_torchvision_and_a_wrong_padding_is_named(tmp_path) -> None:
    timm, torchvision = import_timm(), import_torchvision()
    torch.manual_seed(0)
    torch.save(trained_like(timm.create_model("mobilenetv2_050", num_classes=10)).state_dict(), tmp_path / "t.pth")
    model = torchvision.models.mobilenet_v2(width_mult=0.5, num_classes=10)
    torch.save(trained_like(model).state_dict(), tmp_path / "tv.pth")

    found = verify(tmp_path / "t.pth", model_name="mobilenet_v2_050")
    assert (found.format, found.reference, found.num_classes) == ("timm", f"timm {timm.__version__}", 10)
    assert (found.padding, found.bn_eps, found.background_dropped) == ("symmetric", 1e-5, False)
    assert found.agreement == 1.0 and found.max_abs_diff < 1e-4 and found.images == 16
    assert found.wrong_conventions == [] and found.verdict.startswith(f"agrees with timm {timm.__version__} on 100.0%")
    assert [c.name for c in found.conventions] == ["padding", "bn_eps", "pixels"]

    wrong = verify(tmp_path / "t.pth", model_name="mobilenet_v2_050", padding="tf_same")
    assert [c.name for c in wrong.wrong_conventions] == ["padding"]
    assert "padding tf_same loses" in wrong.verdict and wrong.verdict.endswith("this file needs symmetric")

    found = verify(tmp_path / "tv.pth", model_name="mobilenet_v2_050")
    assert (found.format, found.agreement) == ("torchvision", 1.0) and found.max_abs_diff < 1e-4


@pytest.mark.reference
def test_a_transformers_folder_agrees_with_transformers(tmp_path) -> None:
    transformers = import_transformers()
    labels = {0: "background", **{i: f"class {i}" for i in range(1, 1001)}}
    config = transformers.MobileNetV1Config(depth_multiplier=0.25, image_size=128, id2label=labels)
    torch.manual_seed(0)
    trained_like(transformers.MobileNetV1ForImageClassification(config)).save_pretrained(tmp_path)
    transformers.MobileNetV1ImageProcessor(crop_size={"height": 128, "width": 128}).save_pretrained(tmp_path)
    found = verify(tmp_path)
    read = (found.format, found.padding, found.bn_eps, found.background_dropped)
    assert read == ("transformers", "tf_same", 1e-3, True)
    assert found.reference == f"transformers {transformers.__version__}" and found.agreement >= 15 / 16
    assert [c.name for c in found.conventions][-1] == "background class"


def test_our_own_file_has_nothing_to_compare_with(tmp_path) -> None:
    save_weights(create_model("mobilenet_v1_025", num_classes=3, input_size=64), tmp_path / "m.safetensors")
    found = verify(tmp_path / "m.safetensors")
    assert (found.format, found.arch, found.width_mult, found.reference) == ("mobilenet", "mobilenet_v1", 0.25, None)
    assert found.verdict == "nothing to compare with: the file is mobilenet's own: it was written by this library"
    done = cli("verify", str(tmp_path / "m.safetensors"), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["verdict"] == found.verdict


@pytest.mark.shared
def test_google_tflite_agrees_with_litert_and_the_command_names_a_wrong_padding() -> None:
    pytest.importorskip("ai_edge_litert", reason="LiteRT is a test-only reference: pip install ai-edge-litert")
    weights = shared_path("weights/mobilenet_v2_1.0_224_quant.tflite")
    images = sorted(shared_path("imagenet-sample").glob("*.JPEG"))[::10]
    found = verify(weights, images)
    assert (found.format, found.padding, found.background_dropped, found.images) == ("tflite", "tf_same", True, 50)
    assert found.agreement >= 0.96 and found.wrong_conventions == []  # int8 in LiteRT against our float: 98.2% on 500
    lines = dict(zip([c.name for c in found.conventions], found.lines(), strict=True))
    assert lines["padding"].startswith("padding tf_same matters: symmetric would lose")
    assert lines["background class"].startswith("background class dropped matters: kept would lose")

    # The built-in images (flat colours, sharp edges) show padding best: 62% agreement, where 95% of real images agree.
    done = cli("verify", str(weights), "--padding", "symmetric")
    assert done.returncode == 1, done.stderr
    assert "verdict: padding symmetric loses" in done.stdout and "this file needs tf_same" in done.stdout
