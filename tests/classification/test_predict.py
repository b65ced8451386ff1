"""Images in, names out: ImageNet's class names, any kind of image, the interpolation of the preprocessing."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import mobilenet
from mobilenet.data.imagenet import imagenet_classes, imagenet_names_for, imagenet_synsets, imagenet_wordnet_names
from mobilenet.data.images import ImageTransform, preprocess
from mobilenet.nn.preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing
from tests.helpers.data import shared_path

CORAL_V2 = "weights/mobilenet_v2_1.0_224_quant.tflite"
# Real ImageNet images, named <synset>_<name>: one landscape, one portrait, each its class's top-1 with the Coral V2.
SAMPLES = ("imagenet-sample/n01530575_brambling.JPEG", "imagenet-sample/n01537544_indigo_bunting.JPEG")


# --- ImageNet's classes, shipped with the library ------------------------------------------------------


@pytest.mark.shared
def test_shipped_classes_are_the_class_index() -> None:
    index = json.loads(shared_path("imagenet_class_index.json").read_text())
    assert imagenet_synsets() == [index[str(i)][0] for i in range(1000)]
    assert imagenet_synsets() == sorted(imagenet_synsets())
    assert imagenet_wordnet_names() == [index[str(i)][1] for i in range(1000)]
    # Coral's labels: "background", then the same 1000 in the same order.
    labels = shared_path("weights/imagenet_labels.txt").read_text().splitlines()
    assert labels == ["background", *imagenet_wordnet_names()]


@pytest.mark.reference
def test_class_names_are_torchvisions(torchvision_models) -> None:
    assert imagenet_classes() == torchvision_models.MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"]


def test_class_names_are_unique_first_lemmas() -> None:
    names = imagenet_classes()
    assert len(names) == len(set(names)) == 1000
    first_lemmas = [wordnet.split(", ")[0] for wordnet in imagenet_wordnet_names()]
    assert [i for i in range(1000) if names[i] != first_lemmas[i]] == [134, 639]  # the two repeated lemmas
    assert imagenet_names_for(1000) == names
    assert imagenet_names_for(1001) == ["background", *names]
    assert imagenet_names_for(10) is None


# --- interpolation, and the preprocessing as a transform ---------------------------------------------------


def test_interpolation_round_trips_and_defaults_for_older_files() -> None:
    bicubic = Preprocessing(input_size=192, crop_pct=1.0, interpolation="bicubic")
    assert Preprocessing.from_json(bicubic.to_json()) == bicubic
    saved_before = '{"crop_pct": 0.875, "input_size": 224, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}'
    assert Preprocessing.from_json(saved_before).interpolation == "bilinear"
    with pytest.raises(ValueError, match="'lanczos' is not one of bilinear, bicubic, nearest"):
        Preprocessing(interpolation="lanczos")


@pytest.fixture(scope="module")
def noise_image() -> Image.Image:
    """Detail at every scale, so that each resampling filter gives other pixels."""
    pixels = np.random.default_rng(0).integers(0, 256, (375, 500, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


@pytest.mark.reference
@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic", "nearest"])
def test_transform_is_timms_eval_transform(timm, noise_image, interpolation: str) -> None:
    from timm.data import create_transform

    pre = Preprocessing(input_size=224, crop_pct=0.875, interpolation=interpolation)
    theirs = create_transform(224, crop_pct=0.875, interpolation=interpolation, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    torch.testing.assert_close(ImageTransform(pre)(noise_image), theirs(noise_image), rtol=0, atol=1e-5)


def test_interpolation_is_applied_and_transform_is_preprocess(noise_image) -> None:
    outputs = {name: ImageTransform(Preprocessing(interpolation=name))(noise_image) for name in ("bilinear", "bicubic")}
    assert not torch.equal(outputs["bilinear"], outputs["bicubic"])
    transform = pickle.loads(pickle.dumps(ImageTransform(Preprocessing(interpolation="bicubic"))))  # DataLoader workers
    assert torch.equal(transform(noise_image), preprocess(noise_image, transform.pre))
    assert torch.equal(transform(noise_image), outputs["bicubic"])


# --- one call, any image -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def coral_v2() -> torch.nn.Module:
    return mobilenet.create_model("mobilenet_v2", weights=shared_path(CORAL_V2)).eval()


def every_kind(path: Path, pre: Preprocessing) -> dict[str, object]:
    """The same image as each kind of input classify takes."""
    pixels = np.asarray(Image.open(path).convert("RGB"))  # (H, W, 3) uint8
    chw = torch.from_numpy(pixels.copy()).permute(2, 0, 1)
    return {
        "str": str(path),
        "Path": path,
        "bytes": path.read_bytes(),
        "PIL": Image.open(path),
        "PIL RGBA": Image.open(path).convert("RGBA"),  # the alpha is dropped, as load_image drops it
        "array HWC": pixels,
        "array NHWC": pixels[None],
        "tensor CHW": chw,
        "tensor NCHW": chw[None],
        "float tensor, preprocessed": ImageTransform(pre)(path),
    }


def top_classes(result: dict) -> list[tuple[int, str]]:
    return [(entry["index"], entry["name"]) for entry in result["top"]]


def top_probs(result: dict) -> list[float]:
    return [entry["prob"] for entry in result["top"]]


@pytest.mark.shared
def test_every_kind_of_image_gets_the_paths_classes(coral_v2) -> None:
    for sample in SAMPLES:
        path = shared_path(sample)
        synset, name = path.stem.split("_", 1)
        (expected,) = mobilenet.classify(coral_v2, path, top=3)
        assert expected["image"] == str(path)
        best = expected["top"][0]
        assert best["index"] == imagenet_synsets().index(synset)
        assert best["name"].split(",")[0] == name.replace("_", " ") and best["prob"] > 0.9
        kinds = every_kind(path, coral_v2.preprocessing)
        results = mobilenet.classify(coral_v2, list(kinds.values()), top=3)
        assert len(results) == len(kinds)
        for kind, result in zip(kinds, results, strict=True):
            # The same pixels in, the same classes out (probabilities to float rounding: batches differ in size).
            assert top_classes(result) == top_classes(expected), kind
            assert top_probs(result) == pytest.approx(top_probs(expected), rel=1e-4), kind
            assert result["image"] == (str(path) if kind in ("str", "Path") else None), kind


@pytest.mark.shared
def test_a_model_without_names_gets_torchvisions_imagenet_names(coral_v2, tmp_path) -> None:
    path = shared_path(SAMPLES[0])
    weights = tmp_path / "state_dict.pth"
    torch.save(coral_v2.state_dict(), weights)  # a bare state dict: no class names, as torchvision's and timm's
    # The file does not say its architecture: the TensorFlow settings that the TFLite file implied are given here.
    loaded = mobilenet.create_model("mobilenet_v2", weights=weights, padding="tf_same", bn_eps=1e-3)
    assert loaded.class_names is None
    (result,) = mobilenet.classify(loaded, path, top=1)
    assert result["top"][0]["index"] == 10 and result["top"][0]["name"] == "brambling"


def test_unreadable_images_are_reported_and_the_rest_still_run(tmp_path) -> None:
    model = mobilenet.mobilenet_v2(width_mult=0.35, num_classes=3, input_size=64)
    model.class_names = ["red", "green", "blue"]
    good = np.zeros((40, 50, 3), dtype=np.uint8)
    images = [
        b"not an image",
        good,
        tmp_path / "missing.jpg",
        np.zeros((40, 50), dtype=np.float32),
        torch.ones(3, 9, 9),
    ]
    results = mobilenet.classify(model, images, top=2)
    assert [set(r) for r in results] == [{"image", "error"}, {"image", "top"}, *[{"image", "error"}] * 3]
    assert results[0]["error"].startswith("cannot read image of 12 bytes: no image format")
    assert results[2] == {"image": str(tmp_path / "missing.jpg"), "error": f"image not found: {tmp_path}/missing.jpg"}
    assert "float32" in results[3]["error"] and "(3, 64, 64)" in results[4]["error"]
    assert {entry["name"] for entry in results[1]["top"]} <= {"red", "green", "blue"}
    with pytest.raises(TypeError, match="cannot take a int as an image"):
        mobilenet.classify(model, [good, 42])


# --- decode_predictions --------------------------------------------------------------------------------


def test_decode_predictions_names_logits_and_probabilities() -> None:
    logits = torch.zeros(2, 1001)
    logits[0, 11], logits[1, 0] = 10.0, 10.0  # TensorFlow's layout: brambling is 10 + 1
    decoded = mobilenet.decode_predictions(logits, top=2)
    assert [row[0]["name"] for row in decoded] == ["brambling", "background"]
    probs = logits.softmax(dim=1)
    from_probs = mobilenet.decode_predictions(probs.numpy(), top=2)  # Keras's input: NumPy probabilities
    for mine, reference in zip(from_probs, decoded, strict=True):
        assert [e["index"] for e in mine] == [e["index"] for e in reference]
        assert [e["prob"] for e in mine] == pytest.approx([e["prob"] for e in reference])
    (row,) = mobilenet.decode_predictions(probs[0, 1:] / probs[0, 1:].sum(), top=1)  # one row, 1000 classes
    assert (
        row[0]["index"] == 10
        and row[0]["name"] == "brambling"
        and row[0]["prob"] == pytest.approx(np.exp(10) / (np.exp(10) + 999))
    )
    (two_classes,) = mobilenet.decode_predictions(torch.tensor([[1.0, 3.0]]), top=5)  # no names: indices
    assert [(e["index"], e["name"]) for e in two_classes] == [(1, "1"), (0, "0")]
    assert two_classes[0]["prob"] == pytest.approx(torch.tensor([1.0, 3.0]).softmax(0)[1].item())
    with pytest.raises(ValueError, match="2 class names for outputs of 3 classes"):
        mobilenet.decode_predictions(torch.zeros(1, 3), ["a", "b"])
