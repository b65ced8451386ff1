"""`mobilenet eval`: a 1000-class model scored on ImageNet-synset folders, and a model on its own classes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import mobilenet
from mobilenet.classification.evaluate import evaluate_folder
from mobilenet.weights import save_weights
from tests.helpers.data import shared_path

pytestmark = pytest.mark.shared


@pytest.fixture(scope="module")
def synset_folder(tmp_path_factory):
    """Links to the first 12 real validation images of 4 Imagenette classes (never copies of them)."""
    source = shared_path("imagenette/val")
    root = tmp_path_factory.mktemp("imagenette-subset")
    for synset in sorted(p.name for p in source.iterdir())[:4]:
        (root / synset).mkdir()
        for image in sorted((source / synset).iterdir())[:12]:
            (root / synset / image.name).symlink_to(image)
    return root


def test_eval_json_on_synset_folders(synset_folder, tmp_path) -> None:
    weights = shared_path("weights/mobilenet_v2_1.0_224_quant.tflite")
    index = shared_path("imagenet_class_index.json")
    png = tmp_path / "confusion.png"
    result = subprocess.run(
        [sys.executable, "-m", "mobilenet", "eval", "--weights", str(weights), "--data", str(synset_folder),
         "--class-index", str(index), "--json", "--plot", str(png)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    # 1000-way on real validation images: the whole of imagenette/val scores 72.6% top-1 (BENCHMARKS.md),
    # in line with this checkpoint's published 71.8% on ImageNet; these 48 measured 62.5% / 93.8%.
    assert scores["n"] == 48 and 0.5 <= scores["top1"] <= scores["top5"] and scores["top5"] >= 0.85
    assert len(scores["per_class"]) == 4 and len(scores["confusion"]) == 4 and len(scores["confusion"][0]) == 5
    assert sum(map(sum, scores["confusion"])) == 48
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_synset_folders_need_a_class_index(synset_folder) -> None:
    with pytest.raises(ValueError, match="pass a class index"):
        evaluate_folder(shared_path("weights/mobilenet_v1_0.25_128_quant.tflite"), synset_folder)


def test_model_on_its_own_classes(synset_folder, tmp_path) -> None:
    classes = sorted(p.name for p in synset_folder.iterdir())
    model = mobilenet.mobilenet_v2(width_mult=0.35, num_classes=4, input_size=64)
    path = tmp_path / "four.safetensors"
    save_weights(model, path, class_names=classes)
    result = evaluate_folder(path, synset_folder, workers=0)
    assert result.n == 48 and result.classes == classes
    assert sum(result.confusion[i][j] for i in range(4) for j in range(4)) == 48  # no "other" outputs
