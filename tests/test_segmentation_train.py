"""Segmentation through the unchanged trainer (mobilenet.segmentation.task): DeepLab's joint augmentation, fine-tuning
starts, the poly schedule and the deeplab recipe, learning, exact resume after SIGKILL, torchrun, bad masks.

The data is made here: small VOC folders of coloured shapes on a noisy background, a 1-pixel void (255) border
around each shape as VOC's masks have, every third image 64x48 so that crops get padded.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from safetensors.torch import load_file

from mobilenet.cli import main
from mobilenet.nn.model import MobileNet
from mobilenet.nn.preprocessing import Preprocessing
from mobilenet.nn.variants import MODELS
from mobilenet.segmentation.augment import AugmentedPairs, augment_pair
from mobilenet.segmentation.data import IGNORE_INDEX, PAD_PIXEL, VOC_CLASSES, SegmentationPairs
from mobilenet.segmentation.load import load_deeplab
from mobilenet.segmentation.model import DeepLabV3
from mobilenet.segmentation.task import SegmentationTask, training_pairs
from mobilenet.tasks import train
from mobilenet.training.optim import lr_factor
from mobilenet.training.recipes import RECIPES, make_config
from mobilenet.training.trainer import Trainer, TrainingDiverged
from mobilenet.weights.format import save_weights
from tests.conftest import flags
from tests.faults import (
    assert_refused,
    run_in_process,
)
from tests.task_runs import (
    assert_sigkill_then_resume_is_bitwise_equal,
    assert_torchrun_matches_accumulation,
    metrics_rows,
)

COLOURS = {1: (220, 40, 40), 8: (40, 200, 60), 15: (40, 70, 230)}  # aeroplane, cat, person
# Width 0.35 at 64x64: 12 training images in 6 steps of 2 per epoch. DeepLab's recipe (dropout on, BatchNorm frozen).
TINY = {
    "recipe": "deeplab",
    "model": "deeplabv3_mobilenet_v2",
    "width_mult": 0.35,
    "input_size": 64,
    "batch_size": 2,
    "epochs": 2,
    "lr": 0.02,
    "lr_batch": None,
    "workers": 0,
}

# In-process runs on one thread, as the subprocesses: the same kernels, the same bits.
pytestmark = pytest.mark.usefixtures("one_thread")


def write_voc(root: Path, count: int, seed: int) -> Path:
    """``root/JPEGImages/*.jpg`` and ``root/SegmentationClass/*.png``: two shapes of two classes per image."""
    rng = np.random.default_rng(seed)
    (root / "JPEGImages").mkdir(parents=True)
    (root / "SegmentationClass").mkdir()
    for index in range(count):
        size = (64, 64) if index % 3 else (64, 48)
        noise = rng.integers(90, 160, 3) + rng.normal(0, 12, (size[1], size[0], 3))
        image = Image.fromarray(np.clip(noise, 0, 255).astype(np.uint8))
        mask, void = Image.new("L", size), Image.new("L", size)
        for label in rng.choice(list(COLOURS), size=2, replace=False):
            left, top = rng.integers(0, size[0] - 24), rng.integers(0, size[1] - 24)
            box = (left, top, left + rng.integers(14, 24), top + rng.integers(14, 24))
            shape = "ellipse" if rng.random() < 0.5 else "rectangle"
            getattr(ImageDraw.Draw(image), shape)(box, fill=COLOURS[label])
            getattr(ImageDraw.Draw(mask), shape)(box, fill=int(label))
            getattr(ImageDraw.Draw(void), shape)(box, outline=255)
        classes = np.where(np.asarray(void) == 255, IGNORE_INDEX, np.asarray(mask)).astype(np.uint8)
        image.save(root / "JPEGImages" / f"{index:04d}.jpg", quality=95)
        Image.fromarray(classes).save(root / "SegmentationClass" / f"{index:04d}.png")
    return root


@pytest.fixture(scope="module")
def voc(tmp_path_factory) -> Path:
    """A root with train/ (12 pairs) and val/ (4 pairs) VOC folders."""
    root = tmp_path_factory.mktemp("voc")
    write_voc(root / "train", 12, seed=0)
    write_voc(root / "val", 4, seed=1)
    return root


def tiny(voc: Path, **overrides) -> dict:
    return {**TINY, "data": str(voc), **overrides}


def test_poly_schedule_and_the_deeplab_recipe(capsys) -> None:
    deeplab = RECIPES["deeplab"]
    assert (deeplab.task, deeplab.optimizer, deeplab.momentum, deeplab.schedule) == ("segmentation", "sgd", 0.9, "poly")
    assert (deeplab.weight_decay, deeplab.label_smoothing, deeplab.dropout) == (4e-5, 0.0, 0.1)
    assert make_config("deeplab", batch_size=16).scaled_lr() == pytest.approx(0.007)  # DeepLab's, per 16 crops
    poly = make_config("deeplab", epochs=10)
    factors = [lr_factor(poly, step, 10) for step in (0, 50, 99, 100)]
    assert factors == pytest.approx([1, 0.5**0.9, 0.01**0.9, 0])  # (1 - step / total) ** 0.9, per step
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--schedule {exponential,cosine,poly} default: cosine" in out and "finetune,deeplab," in out


def test_augmentation_moves_image_and_mask_together(tmp_path) -> None:
    # Left half red (class 1), right half blue (class 15): a pixel's colour says its class wherever it is taken.
    pixels = np.zeros((48, 64, 3), np.uint8)
    pixels[:, :32], pixels[:, 32:] = COLOURS[1], COLOURS[15]
    classes = np.full((48, 64), 15, np.uint8)
    classes[:, :32] = 1
    Image.fromarray(pixels).save(tmp_path / "image.png")
    Image.fromarray(classes).save(tmp_path / "mask.png")
    pairs = SegmentationPairs([(tmp_path / "image.png", tmp_path / "mask.png")])
    image, mask = pairs[0]

    padded, both, flipped = [], [], 0
    for seed in range(24):
        crop, labels = augment_pair(image, mask, 64, np.random.default_rng(seed))
        assert crop.shape == (3, 64, 64) and crop.dtype == torch.uint8 and labels.dtype == torch.long
        pad = labels == IGNORE_INDEX  # only padding is void here: the mean pixel, exactly
        assert (crop[:, pad] == PAD_PIXEL).all() and (crop[:, ~pad] != PAD_PIXEL).any(0).all()
        red = crop[0] > crop[2]
        agree = ((labels == 1) == red)[~pad].float().mean()
        assert agree > 0.97, (seed, agree)  # all but the resampled pixels on the boundary
        padded.append(int(pad.sum()))
        columns = [(labels == label).nonzero()[:, 1].float().mean() for label in (1, 15)]
        both.append(not any(column.isnan() for column in columns))
        flipped += int(both[-1] and columns[0] > columns[1])  # red right of blue
    assert padded.count(0) and len(set(padded)) > 3  # scales above and below 64/48: cropped, padded
    assert 0 < flipped < sum(both)  # flipped about half the time

    # Through the dataset the trainer reads: the sample's seed alone decides, the crop comes normalized.
    crops = AugmentedPairs(pairs, 64, Preprocessing(mean=(0.5,) * 3, std=(0.5,) * 3))
    first, again = crops[0, 7], crops[0, 7]
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not all(torch.equal(crops[0, seed][1], first[1]) for seed in range(8))
    expected, _ = augment_pair(image, mask, 64, np.random.default_rng(7))
    torch.testing.assert_close(first[0], expected.float() / 127.5 - 1)


def test_data_layouts(tmp_path, voc) -> None:
    """A root with train/ and val/, a folder and --val-data, the VOC devkit's own lists, or a seeded split."""
    assert [len(p) for p in training_pairs(make_config(**tiny(voc)))[:2]] == [12, 4]
    given = make_config(**tiny(voc / "train"), val_data=str(voc / "val"))
    assert training_pairs(given)[:2] == training_pairs(make_config(**tiny(voc)))[:2]
    split = training_pairs(make_config(**tiny(voc / "train"), val_fraction=0.25))
    assert [len(p) for p in split[:2]] == [9, 3] and not set(split[0]) & set(split[1])
    devkit = shutil.copytree(voc / "train", tmp_path / "VOC2012")
    (devkit / "ImageSets" / "Segmentation").mkdir(parents=True)
    (devkit / "ImageSets" / "Segmentation" / "train.txt").write_text("0000\n0001\n0002\n")
    (devkit / "ImageSets" / "Segmentation" / "val.txt").write_text("0005\n")
    train_pairs, val_pairs, _ = training_pairs(make_config(**tiny(devkit)))
    assert [image.stem for image, _ in train_pairs] == ["0000", "0001", "0002"] and val_pairs[0][1].stem == "0005"


def test_prepare_starts_from_a_classifier_or_deeplab_weights(tmp_path, voc) -> None:
    classifier = MobileNet(replace(MODELS["mobilenet_v2_035"], num_classes=5))
    save_weights(classifier, tmp_path / "classifier.safetensors")
    task = SegmentationTask()
    model, data = task.prepare(
        make_config(**tiny(voc, model=None, width_mult=None), weights=str(tmp_path / "classifier.safetensors"))
    )
    assert isinstance(model, DeepLabV3) and model.config.output_stride == 16 and model.config.width_mult == 0.35
    features = classifier.state_dict()
    assert all(torch.equal(v, features[k]) for k, v in model.backbone.state_dict().items())
    assert model.class_names == list(VOC_CLASSES) and model.eval()(torch.zeros(1, 3, 64, 64)).shape == (1, 21, 64, 64)
    assert task.calibration_batch(data, 3).shape == (3, 3, 64, 64) and len(data.val) == 4

    save_weights(model, tmp_path / "deeplab.safetensors")  # a DeepLab file goes on as it is, head and all
    again, _ = SegmentationTask().prepare(
        make_config(**tiny(voc, model=None), weights=str(tmp_path / "deeplab.safetensors"))
    )
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in again.state_dict().items())
    with pytest.raises(ValueError, match=r"holds mobilenet_v2 width 0\.35, not the mobilenet_v2 width 1 "):
        SegmentationTask().prepare(
            make_config(**tiny(voc, width_mult=None), weights=str(tmp_path / "classifier.safetensors"))
        )


def test_trains_through_the_trainer_and_beats_the_untrained_model(tmp_path, voc) -> None:
    config = make_config(**tiny(voc, lr=0.05, freeze_bn=False), out=str(tmp_path / "run"))  # from scratch: BN learns
    task = SegmentationTask()
    torch.manual_seed(config.seed)  # the trainer's initial weights
    untrained, data = task.prepare(config)
    before = task.evaluate(untrained, data.val, 4, 0, torch.device("cpu"))

    result = train(config, progress=False)
    assert result.steps == 12 and result.best_metric == "miou" and result.val.n == 4
    assert result.val.metrics["miou"] > before.metrics["miou"] + 0.1, (before.metrics, result.val.metrics)
    rows = metrics_rows(result.run_dir)
    assert float(rows[1]["train_loss"]) < float(rows[0]["train_loss"]), rows
    assert float(rows[-1]["lr"]) == 0.0  # poly ends at zero
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["task"] == "segmentation" and summary["classes"] == 21 and summary["model"]["width_mult"] == 0.35
    best = load_deeplab(result.run_dir / "best.safetensors")  # what `mobilenet segment --weights` reads
    assert best.class_names == list(VOC_CLASSES) and best.preprocessing == result.model.preprocessing


def bad_copy(voc: Path, to: Path, mask: np.ndarray) -> Path:
    """A copy of ``voc`` whose training mask 0001 (of a 64x64 image) is ``mask``."""
    shutil.copytree(voc, to)
    Image.fromarray(mask).save(to / "train" / "SegmentationClass" / "0001.png")
    return to


@pytest.mark.parametrize(
    ("mask", "says"),
    [
        (np.zeros((32, 64), np.uint8), "is 64x32 but its image"),
        (np.full((64, 64), 40, np.uint8), "has values [40] outside the 21 classes"),
    ],
    ids=["size", "values"],
)
def test_a_bad_mask_stops_mobilenet_train_in_one_line(tmp_path, voc, mask, says) -> None:
    data = bad_copy(voc, tmp_path / "data", mask)
    out = tmp_path / "run"
    settings = {**tiny(data), "workers": 2}  # checked up front: not wrapped in a DataLoader worker's traceback
    line = assert_refused(run_in_process(["train", *flags(settings), "--out", str(out)]))
    assert says in line and "0001.png" in line, line
    assert not out.exists()


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_is_bitwise_equal(tmp_path, voc) -> None:
    # Dropout on: the resumed RNG must drop the same.
    assert_sigkill_then_resume_is_bitwise_equal(tmp_path, tiny(voc, checkpoint_every=1), steps_per_epoch=6)


@pytest.mark.slow
def test_torchrun_two_processes_match_one_with_accumulation(tmp_path, voc) -> None:
    # Nothing random that differs between processes; the processes' confusion matrices are summed.
    assert_torchrun_matches_accumulation(tmp_path, tiny(voc, epochs=1, batch_size=4, dropout=0.0), "miou")


def test_ema_bf16_channels_last_and_accumulation_train_together(tmp_path, voc) -> None:
    settings = {"epochs": 1, "ema_decay": 0.99, "amp": True, "channels_last": True, "accum_steps": 2}
    trainer = Trainer(
        make_config(**tiny(voc, **settings), out=str(tmp_path / "run")), SegmentationTask(), progress=False
    )
    result = trainer.run()
    assert result.steps == 6 and result.model is trainer.ema.module  # 12 crops in batches of 2; the average ships
    assert all(torch.isfinite(p).all() for p in result.model.parameters())
    assert all(np.isfinite(v) for v in result.val.metrics.values()), result.val.metrics
    assert trainer.model.backbone.features[0][0].weight.is_contiguous(memory_format=torch.channels_last)


def test_divergence_stops_with_one_line_and_keeps_the_last_checkpoint(tmp_path, voc) -> None:
    run = tmp_path / "run"
    with pytest.raises(TrainingDiverged) as stopped:
        train(make_config(**tiny(voc, epochs=1, lr=1e12, checkpoint_every=1), out=str(run)), progress=False)
    assert "\n" not in str(stopped.value) and "last checkpoint in" in str(stopped.value), stopped.value
    pointer = json.loads((run / "last.json").read_text())
    assert all(torch.isfinite(t.float()).all() for t in load_file(run / pointer["weights"]).values())
