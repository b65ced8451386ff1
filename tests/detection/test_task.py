"""Detection through the unchanged trainer (mobilenet.detection.task): the ssdlite recipe, fine-tuning starts,
learning, exact resume after SIGKILL, torchrun, a bad annotation.

The data is made here (``tests.helpers.samples``): a small PASCAL VOC folder of squares and discs on a noisy
background, with its train and val lists, one training image without any object (a negative). What every task is held
to (exact resume, torchrun, divergence, bf16) is in ``tests/kinds``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from mobilenet.detection.load import load_detector
from mobilenet.detection.model import SSD
from mobilenet.detection.task import DetectionTask
from mobilenet.nn.model import MobileNet
from mobilenet.nn.variants import MODELS
from mobilenet.tasks import make_config, recipes, train
from mobilenet.weights.format import save_weights
from tests.helpers.faults import assert_refused, run_in_process
from tests.helpers.runs import flags, metrics_rows
from tests.helpers.samples import DETECTION_TINY, SHAPES, write_voc_boxes

TINY = DETECTION_TINY

# In-process runs on one thread, as the subprocesses: the same kernels, the same bits.
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def voc(tmp_path_factory) -> Path:
    return write_voc_boxes(tmp_path_factory.mktemp("voc") / "shapes", 12, 4)


def tiny(voc: Path, **overrides) -> dict:
    return {**TINY, "data": str(voc), **overrides}


def test_the_ssdlite_recipe() -> None:
    recipe = recipes()["ssdlite"]
    assert (recipe.task, recipe.optimizer, recipe.schedule, recipe.input_size) == ("detection", "adamw", "cosine", 320)
    assert 0 < recipe.backbone_lr_mult < 1  # AdamW at the full rate saturated the backbone (BENCHMARKS.md)
    assert make_config("ssdlite", batch_size=32).scaled_lr() == pytest.approx(0.001)  # not scaled with the batch
    with pytest.raises(ValueError, match=r"^--mixup is a setting of the classification task: detection takes none$"):
        make_config("ssdlite", data="unused", mixup=0.2)


def test_its_own_settings_set_the_anchors_and_the_matching(voc) -> None:
    config = make_config(**tiny(voc, min_scale=0.1, max_scale=0.8, match_threshold=0.4))
    model, data = DetectionTask().prepare(config)
    assert (model.config.min_scale, model.config.max_scale, data.train.match_threshold) == (0.1, 0.8, 0.4)
    default, _ = DetectionTask().prepare(make_config(**tiny(voc)))
    assert (default.config.min_scale, default.config.max_scale) == (0.2, 0.95)  # TF's config
    assert (default.config.lowest_layer_stride, default.config.reduce_boxes_in_lowest_layer) == (16, True)
    small = make_config(**tiny(voc, lowest_layer_stride=8, reduce_boxes_in_lowest_layer=False))
    model, data = DetectionTask().prepare(small)
    assert model.config.tap_strides == (8, 16, 32) and data.train.anchors.shape == model.anchors(64, 64).shape
    with pytest.raises(ValueError, match=r"^--lowest-layer-stride must be one of 8, 16, 32$"):
        make_config(**tiny(voc, lowest_layer_stride=12))


def test_bf16_channels_last_is_refused_where_pytorch_trains_it_wrong(voc) -> None:
    """A depthwise conv on a 1x1 map gets random weight gradients in bf16 channels-last on a CPU (torch 2.13): an
    SSDLite's extra layers meet 1x1 maps below 257 pixels, where the run is refused up front."""
    settings = tiny(voc, amp=True, channels_last=True, device="cpu")
    with pytest.raises(ValueError, match=r"drop --channels-last, or train at --input-size 257 or more"):
        DetectionTask().prepare(make_config(**settings))
    DetectionTask().prepare(make_config(**{**settings, "input_size": 288}))
    DetectionTask().prepare(make_config(**{**settings, "channels_last": False}))


def test_prepare_starts_from_a_classifier_or_a_detector(tmp_path, voc) -> None:
    classifier = MobileNet(replace(MODELS["mobilenet_v2_035"], num_classes=5))
    save_weights(classifier, tmp_path / "classifier.safetensors")
    task = DetectionTask()
    settings = tiny(voc, model=None, width_mult=None, weights=str(tmp_path / "classifier.safetensors"))
    model, data = task.prepare(make_config(**settings))
    assert isinstance(model, SSD) and model.config.width_mult == 0.35 and model.num_classes == 3
    features = classifier.state_dict()
    assert all(torch.equal(v, features[k]) for k, v in model.backbone.state_dict().items())
    assert model.class_names == ["background", *SHAPES] and len(data.train) == 12 and len(data.val) == 4
    image, codes, _classes, positives = data.train[(0, 7)]
    assert image.shape == (3, 64, 64) and codes.shape == (len(model.anchors(64, 64)), 4) and positives.any()

    save_weights(model, tmp_path / "detector.safetensors")  # a detector goes on as it is, heads and all
    again, data = DetectionTask().prepare(make_config(**settings | {"weights": str(tmp_path / "detector.safetensors")}))
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in again.state_dict().items()) and data.class_rows is None
    model.class_names = ["background", "circle", "square"]  # one class other than the data's: new class predictors
    save_weights(model, tmp_path / "other.safetensors")
    other, data = DetectionTask().prepare(make_config(**settings | {"weights": str(tmp_path / "other.safetensors")}))
    assert data.class_rows == {"background": [], "disc": [], "square": []}  # a start for some classes only: none
    renamed = {"weights": str(tmp_path / "other.safetensors"), "merge_classes": "disc=circle"}
    other, data = DetectionTask().prepare(make_config(**settings | renamed))
    assert data.class_rows == {"background": ["background"], "disc": ["circle"], "square": ["square"]}
    kept = model.state_dict()
    assert all(torch.equal(v, kept[k]) for k, v in other.state_dict().items() if not k.startswith("class_heads."))
    with pytest.raises(ValueError, match=r"^--lowest-layer-stride 8 changes the heads of the detector in .*detector"
                       r"\.safetensors \(it has 16\): drop it, or start from a classifier's weights$"):  # fmt: skip
        DetectionTask().prepare(make_config(**{**settings, "weights": str(tmp_path / "detector.safetensors"),
                                               "lowest_layer_stride": 8}))  # fmt: skip


def test_trains_through_the_trainer_and_beats_the_untrained_model(tmp_path, voc) -> None:
    config = make_config(**tiny(voc, epochs=4), out=str(tmp_path / "run"))
    task = DetectionTask()
    torch.manual_seed(config.seed)  # the trainer's initial weights
    untrained, data = task.prepare(config)
    before = task.evaluate(untrained, data.val, 4, 0, torch.device("cpu"))

    result = train(config, progress=False)
    assert result.steps == 24 and result.best_metric == "map" and result.val.n == 4
    rows = metrics_rows(result.run_dir)
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"]), rows
    assert result.val.metrics["ap50"] > before.metrics["ap50"], (before.metrics, result.val.metrics)
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["task"] == "detection" and summary["model"]["width_mult"] == 0.35
    best = load_detector(result.run_dir / "best.safetensors")  # what `mobilenet detect --weights` reads
    assert best.class_names == ["background", *SHAPES] and best.preprocessing == result.model.preprocessing


def test_a_bad_annotation_stops_mobilenet_train_in_one_line(tmp_path) -> None:
    data = write_voc_boxes(tmp_path / "broken", 4, 2)
    (data / "Annotations" / "0002.xml").write_text("<annotation><size><width>80</wid")
    out = tmp_path / "run"
    line = assert_refused(run_in_process(["train", *flags(tiny(data)), "--out", str(out)]))
    assert "0002.xml" in line, line
    assert not out.exists()
