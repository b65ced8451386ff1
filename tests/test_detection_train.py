"""Detection through the unchanged trainer (mobilenet.detection.task): the ssdlite recipe, fine-tuning starts,
learning, exact resume after SIGKILL, torchrun, a bad annotation.

The data is made here: a small PASCAL VOC folder of squares and discs on a noisy background, with its train and
val lists, one training image without any object (a negative).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from mobilenet.detection.load import load_detector
from mobilenet.detection.model import SSD
from mobilenet.detection.task import DetectionTask
from mobilenet.nn.model import MobileNet
from mobilenet.nn.variants import MODELS
from mobilenet.tasks import train
from mobilenet.training.recipes import RECIPES, make_config
from mobilenet.weights.format import save_weights
from tests.conftest import flags
from tests.faults import assert_refused, run_in_process
from tests.task_runs import (
    assert_sigkill_then_resume_is_bitwise_equal,
    assert_torchrun_matches_accumulation,
    metrics_rows,
)

CLASSES = ("disc", "square")
# SSDLite at width 0.35 on 64x64 inputs (maps 4, 2, 1, 1, 1, 1): 12 training images in 6 steps of 2 per epoch.
TINY = {
    "recipe": "ssdlite",
    "model": "ssdlite_mobilenet_v2",
    "width_mult": 0.35,
    "input_size": 64,
    "batch_size": 2,
    "epochs": 2,
    "lr": 0.003,
    "warmup_epochs": 0.0,
    "workers": 0,
}

# In-process runs on one thread, as the subprocesses: the same kernels, the same bits.
pytestmark = pytest.mark.usefixtures("one_thread")


def write_voc(root: Path, count: int, val: int, seed: int = 0) -> Path:
    """A VOC devkit folder: ``JPEGImages``, ``Annotations`` and ``ImageSets/Main/{train,val}.txt``."""
    rng = np.random.default_rng(seed)
    for folder in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (root / folder).mkdir(parents=True)
    names = []
    for index in range(count + val):
        name = f"{index:04d}"
        noise = rng.integers(90, 160, 3) + rng.normal(0, 12, (64, 80, 3))
        image = Image.fromarray(np.clip(noise, 0, 255).astype(np.uint8))
        objects = []
        for _ in range(0 if index == 1 else rng.integers(1, 3)):  # image 1: a negative
            label = int(rng.integers(0, 2))
            side = int(rng.integers(18, 34))
            left, top = int(rng.integers(0, 80 - side)), int(rng.integers(0, 64 - side))
            box = (left, top, left + side, top + side)
            draw = ImageDraw.Draw(image)
            (draw.ellipse if label == 0 else draw.rectangle)(box, fill=(230, 40, 40) if label == 0 else (40, 60, 230))
            objects.append(
                f"<object><name>{CLASSES[label]}</name><difficult>0</difficult><bndbox><xmin>{box[0]}</xmin>"
                f"<ymin>{box[1]}</ymin><xmax>{box[2]}</xmax><ymax>{box[3]}</ymax></bndbox></object>"
            )
        image.save(root / "JPEGImages" / f"{name}.jpg", quality=95)
        (root / "Annotations" / f"{name}.xml").write_text(
            f"<annotation><filename>{name}.jpg</filename><size><width>80</width><height>64</height>"
            f"<depth>3</depth></size>{''.join(objects)}</annotation>"
        )
        names.append(name)
    (root / "ImageSets/Main/train.txt").write_text("\n".join(names[:count]) + "\n")
    (root / "ImageSets/Main/val.txt").write_text("\n".join(names[count:]) + "\n")
    return root


@pytest.fixture(scope="module")
def voc(tmp_path_factory) -> Path:
    return write_voc(tmp_path_factory.mktemp("voc") / "shapes", 12, 4)


def tiny(voc: Path, **overrides) -> dict:
    return {**TINY, "data": str(voc), **overrides}


def test_the_ssdlite_recipe() -> None:
    recipe = RECIPES["ssdlite"]
    assert (recipe.task, recipe.optimizer, recipe.schedule, recipe.input_size) == ("detection", "adamw", "cosine", 320)
    assert make_config("ssdlite", batch_size=32).scaled_lr() == pytest.approx(0.001)  # not scaled with the batch
    with pytest.raises(ValueError, match="--mixup is a classification setting"):
        DetectionTask().prepare(make_config("ssdlite", data="unused", mixup=0.2))


def test_prepare_starts_from_a_classifier_or_a_detector(tmp_path, voc) -> None:
    classifier = MobileNet(replace(MODELS["mobilenet_v2_035"], num_classes=5))
    save_weights(classifier, tmp_path / "classifier.safetensors")
    task = DetectionTask()
    settings = tiny(voc, model=None, width_mult=None, weights=str(tmp_path / "classifier.safetensors"))
    model, data = task.prepare(make_config(**settings))
    assert isinstance(model, SSD) and model.config.width_mult == 0.35 and model.num_classes == 3
    features = classifier.state_dict()
    assert all(torch.equal(v, features[k]) for k, v in model.backbone.state_dict().items())
    assert model.class_names == ["background", *CLASSES] and len(data.train) == 12 and len(data.val) == 4
    image, codes, _classes, positives = data.train[(0, 7)]
    assert image.shape == (3, 64, 64) and codes.shape == (len(model.anchors(64, 64)), 4) and positives.any()
    assert task.calibration_batch(data, 3).shape == (3, 3, 64, 64)

    save_weights(model, tmp_path / "detector.safetensors")  # a detector goes on as it is, heads and all
    again, _ = DetectionTask().prepare(make_config(**{**settings, "weights": str(tmp_path / "detector.safetensors")}))
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in again.state_dict().items())


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
    assert best.class_names == ["background", *CLASSES] and best.preprocessing == result.model.preprocessing


def test_a_bad_annotation_stops_mobilenet_train_in_one_line(tmp_path) -> None:
    data = write_voc(tmp_path / "broken", 4, 2)
    (data / "Annotations" / "0002.xml").write_text("<annotation><size><width>80</wid")
    out = tmp_path / "run"
    line = assert_refused(run_in_process(["train", *flags(tiny(data)), "--out", str(out)]))
    assert "0002.xml" in line, line
    assert not out.exists()


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_is_bitwise_equal(tmp_path, voc) -> None:
    # The augmentation draws from the resumed seeds.
    assert_sigkill_then_resume_is_bitwise_equal(tmp_path, tiny(voc, checkpoint_every=1), steps_per_epoch=6)


@pytest.mark.slow
def test_torchrun_two_processes_match_one_with_accumulation(tmp_path, voc) -> None:
    # Each process normalizes its loss by its own matches (as TF's replicas do), as each accumulated micro-batch does;
    # the processes' detections are gathered and scored together.
    assert_torchrun_matches_accumulation(tmp_path, tiny(voc, epochs=1, batch_size=4), "map")
