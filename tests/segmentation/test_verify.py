"""`mobilenet verify` on DeepLab files: Google's weights beside LiteRT and beside transformers, agreement over pixels of
real VOC images, and the conventions that matter named (padding does not at 513, where every map is odd)."""

from __future__ import annotations

import pytest
from benchmarks.references import import_transformers

from mobilenet.registry import load, verify
from mobilenet.segmentation.config import TF_HEAD_BN_EPS
from mobilenet.segmentation.huggingface import HEAD
from mobilenet.weights.huggingface import MODEL_TYPES, key_names
from tests.helpers.data import shared_path

CORAL = "weights/deeplabv3_mnv2_dm05_pascal_quant.tflite"


def voc_images(count: int) -> list:
    return sorted(shared_path("segmentation/voc2012/val/JPEGImages").glob("*.jpg"))[::40][:count]


@pytest.mark.shared
def test_google_deeplab_agrees_with_litert_over_pixels_and_padding_does_not_matter_at_513() -> None:
    pytest.importorskip("ai_edge_litert", reason="LiteRT is a test-only reference: pip install ai-edge-litert")
    found = verify(shared_path(CORAL), voc_images(3))
    read = (found.format, found.measure, found.arch, found.width_mult, found.input_size, found.num_classes)
    assert read == ("tflite", "pixels", "mobilenet_v2", 0.5, 513, 21) and found.reference.startswith("LiteRT ")
    assert found.agreement >= 0.98 and found.max_abs_diff is None  # 8-bit LiteRT gives classes, our float import
    lines = dict(zip([c.name for c in found.conventions], found.lines(), strict=True))
    # 513 -> 257 -> 129 -> 65: TensorFlow's SAME pads an odd map evenly, so both paddings compute the same.
    assert lines["padding"] == "padding tf_same: symmetric would agree as well"
    assert lines["pixels"].startswith("pixels [-1, 1] matters: ImageNet's mean/std would lose")
    assert found.wrong_conventions == [] and found.verdict.endswith("of pixels over 3 images")


def transformers_deeplab_of(model, folder, image_size: int) -> None:
    """Our DeepLab written by transformers as a ``MobileNetV2ForSemanticSegmentation`` folder, for ``image_size``."""
    transformers = import_transformers()
    config = model.config
    settings = transformers.MobileNetV2Config(
        depth_multiplier=config.width_mult, depth_divisible_by=config.divisible_by, min_depth=config.divisible_by,
        output_stride=config.output_stride, image_size=image_size, layer_norm_eps=config.bn_eps,
        id2label=dict(enumerate(model.class_names)),
    )  # fmt: skip
    reference = transformers.MobileNetV2ForSemanticSegmentation(settings)
    names = {**{k: f"backbone.{v}" for k, v in key_names(MODEL_TYPES["mobilenet_v2"]).items()}, **HEAD}
    ours, theirs = model.state_dict(), reference.state_dict()
    for key in theirs:
        module, _, tensor = key.rpartition(".")
        if f"{names.get(module)}.{tensor}" in ours:  # transformers' last 1x1 conv, which no head reads, stays
            value = ours[f"{names[module]}.{tensor}"].clone()
            if module.startswith("segmentation_head") and tensor == "running_var":  # its head's eps, not ours
                value += (config.head_bn_eps or config.bn_eps) - TF_HEAD_BN_EPS
            theirs[key] = value
    reference.load_state_dict(theirs)
    reference.save_pretrained(folder)


@pytest.mark.shared
@pytest.mark.reference
def test_google_deeplab_in_a_transformers_folder_agrees_and_a_wrong_padding_is_named(tmp_path) -> None:
    """At 512 every map is even: TensorFlow's SAME pads after, not before, and reading it symmetric is caught."""
    transformers = import_transformers()
    transformers_deeplab_of(load(shared_path(CORAL)), tmp_path, 512)
    images = voc_images(3)
    found = verify(tmp_path, images)
    assert (found.format, found.input_size, found.reference) == (
        "transformers",
        512,
        f"transformers {transformers.__version__}",
    )
    assert found.agreement == 1.0 and found.max_abs_diff < 1e-4 and found.wrong_conventions == []
    wrong = verify(tmp_path, images, padding="symmetric")  # in-process: transformers needs the tests' torchvision shim
    assert [c.name for c in wrong.wrong_conventions] == ["padding"] and wrong.verdict.endswith(
        "this file needs tf_same"
    )
