"""Segmentation through the unchanged trainer (mobilenet.segmentation.task): DeepLab's joint augmentation, fine-tuning
starts, the poly schedule and the deeplab recipe, its own settings, learning, bad masks.

The data is made here (``tests.helpers.samples``): small VOC folders of coloured shapes on a noisy background. What
every task is held to (exact resume, torchrun, divergence, bf16) is in ``tests/kinds``.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mobilenet.cli import main
from mobilenet.nn.model import MobileNet
from mobilenet.nn.preprocessing import Preprocessing
from mobilenet.nn.variants import MODELS
from mobilenet.segmentation.augment import AugmentedPairs, augment_pair
from mobilenet.segmentation.data import IGNORE_INDEX, PAD_PIXEL, VOC_CLASSES, SegmentationPairs
from mobilenet.segmentation.load import load_deeplab
from mobilenet.segmentation.model import DeepLabV3
from mobilenet.segmentation.task import SegmentationTask, training_pairs
from mobilenet.tasks import make_config, recipes, train
from mobilenet.training.optim import lr_factor
from mobilenet.weights.format import save_weights
from tests.helpers.faults import assert_refused, run_in_process
from tests.helpers.runs import flags, metrics_rows
from tests.helpers.samples import COLOURS, SEGMENTATION_TINY, write_voc_masks

TINY = SEGMENTATION_TINY

# In-process runs on one thread, as the subprocesses: the same kernels, the same bits.
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def voc(tmp_path_factory) -> Path:
    """A root with train/ (12 pairs) and val/ (4 pairs) VOC folders."""
    root = tmp_path_factory.mktemp("voc")
    write_voc_masks(root / "train", 12, seed=0)
    write_voc_masks(root / "val", 4, seed=1)
    return root


def tiny(voc: Path, **overrides) -> dict:
    return {**TINY, "data": str(voc), **overrides}


def test_poly_schedule_and_the_deeplab_recipe(capsys) -> None:
    deeplab = recipes()["deeplab"]
    assert (deeplab.task, deeplab.optimizer, deeplab.schedule) == ("segmentation", "adamw", "cosine")
    assert deeplab.input_size == 257 and deeplab.freeze_bn
    assert deeplab.weight_decay == 4e-5 and (deeplab.options["label_smoothing"], deeplab.options["dropout"]) == (0, 0.1)
    assert make_config("deeplab").scaled_lr() == pytest.approx(0.001) and deeplab.backbone_lr_mult == 0.1
    # DeepLab's own schedule, one flag away: (1 - step / total) ** 0.9
    poly = make_config("deeplab", epochs=10, schedule="poly", warmup_epochs=0.0)
    factors = [lr_factor(poly, step, 10) for step in (0, 50, 99, 100)]
    assert factors == pytest.approx([1, 0.5**0.9, 0.01**0.9, 0])  # (1 - step / total) ** 0.9, per step
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: 1.0; 0.1 with deeplab; 0.3 with ssdlite)" in out and "finetune,qat,deeplab," in out


def test_its_own_settings_and_no_other_task_s(voc) -> None:
    """DeepLab's random scales and output stride are the segmentation task's settings; a classifier's are refused,
    naming only the flag given."""
    config = make_config(**tiny(voc, min_scale_factor=1.0, max_scale_factor=1.5, output_stride=8))
    model, data = SegmentationTask().prepare(config)
    assert data.train.scales == (1.0, 1.25, 1.5) and model.config.output_stride == 8
    assert make_config(**tiny(voc)).options["min_scale_factor"] == 0.5  # DeepLab's 0.5 to 2.0 by default
    with pytest.raises(ValueError, match=r"^--mixup is a setting of the classification task: segmentation takes none$"):
        make_config(**tiny(voc, mixup=0.2))
    with pytest.raises(ValueError, match="--output-stride must be 8 or 16"):
        make_config(**tiny(voc, output_stride=32))


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


def test_a_set_with_its_own_classes_gives_a_deeplab_a_new_last_layer(tmp_path, voc) -> None:
    """A set's classes.txt names its classes; from a DeepLab of VOC's 21, the last layer is new for them and every other
    weight is the file's. A list that names a class twice is refused in one line."""
    deeplab, _ = SegmentationTask().prepare(make_config(**tiny(voc)))
    save_weights(deeplab, tmp_path / "voc.safetensors")
    own = shutil.copytree(voc, tmp_path / "own")
    names = ["background", *(f"part {value}" for value in range(1, 16))]  # the masks hold 1, 8 and 15
    (own / "classes.txt").write_text("\n".join(names) + "\n")
    model, data = SegmentationTask().prepare(make_config(**tiny(own), weights=str(tmp_path / "voc.safetensors")))
    assert model.num_classes == 16 and model.class_names == names == data.classes
    assert data.class_rows == {name: [] for name in names}  # only the background shared by name: every row new
    assert model.eval()(torch.zeros(1, 3, 64, 64)).shape == (1, 16, 64, 64)
    kept = deeplab.state_dict()
    assert all(torch.equal(v, kept[k]) for k, v in model.state_dict().items() if not k.startswith("logits."))
    starts = {name: ["cat", "dog"] if name == "part 1" else [VOC_CLASSES[index]] for index, name in enumerate(names)}
    spec = ";".join(f"{name}={'+'.join(olds)}" for name, olds in starts.items() if name != "background")
    merged = {"weights": str(tmp_path / "voc.safetensors"), "merge_classes": spec}
    _, data = SegmentationTask().prepare(make_config(**tiny(own), **merged))
    assert data.class_rows == starts  # the background by name, the others by --merge-classes
    with pytest.raises(ValueError, match=r"^--merge-classes has nothing to merge: .*voc\.safetensors predicts the "
                       r"data's classes; drop it$"):  # fmt: skip
        SegmentationTask().prepare(make_config(**tiny(voc), **merged))
    (own / "classes.txt").write_text("background\nthing\nthing\n")
    with pytest.raises(ValueError, match=r"classes\.txt names 3 classes \(2 different\): list at least two, each once"):
        SegmentationTask().prepare(make_config(**tiny(own)))


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


def test_fine_tuning_keeps_the_backbone_s_statistics_and_the_new_head_learns_its_own(tmp_path, voc) -> None:
    """``freeze_bn`` (the deeplab recipe's) keeps what the classifier's file gave, trained statistics or TFLite's
    folded identity (variance 1 - eps), and lets the new head's norms learn theirs: frozen at PyTorch's initial
    statistics they would normalize nothing. The run's summary says which."""
    classifier = MobileNet(replace(MODELS["mobilenet_v2_035"], num_classes=5)).train()
    with torch.no_grad():
        classifier(torch.rand(4, 3, 64, 64))  # trained statistics, as a published file's
        classifier.features[0][1].running_mean.zero_()  # and one norm as TFLite's folding leaves it
        classifier.features[0][1].running_var.fill_(1 - classifier.features[0][1].eps)
    save_weights(classifier, tmp_path / "classifier.safetensors")
    settings = tiny(voc, model=None, width_mult=None, freeze_bn=True, epochs=1)
    config = make_config(**settings, weights=str(tmp_path / "classifier.safetensors"), out=str(tmp_path / "run"))
    start, _ = SegmentationTask().prepare(config)

    result = train(config, progress=False)
    norms = {name for name, module in start.named_modules() if isinstance(module, torch.nn.BatchNorm2d)}
    kept = {name for name in norms if name.startswith("backbone.")}
    assert len(kept) == 51 and len(norms - kept) == 3  # the image pooling, the 1x1 branch, the projection
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["batchnorm_statistics"] == {"kept": 51, "learned": 3}
    before, after = start.state_dict(), result.model.state_dict()
    for name in norms:
        same = torch.equal(before[f"{name}.running_var"], after[f"{name}.running_var"])
        assert same == (name in kept), name


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
