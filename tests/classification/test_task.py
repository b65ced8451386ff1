"""Classification through the unchanged trainer (mobilenet.classification.task): its recipes and own settings, folder
data and its errors, unreadable images, the embedded default run, fine-tuning published weights, calibration images.
What every task is held to (exact resume, torchrun, divergence, bf16) is in ``tests/kinds``."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest
import torch
from PIL import Image

from mobilenet.classification.augment import Augmentation, AugmentedImages
from mobilenet.classification.config import DIGITS, ClassificationSettings
from mobilenet.classification.data import LabelledImages, load_digits_images, scan_folder
from mobilenet.classification.task import ClassificationTask, calibration_batch
from mobilenet.nn.model import MobileNet
from mobilenet.nn.preprocessing import Preprocessing
from mobilenet.tasks import make_config, recipes, train, trainer
from mobilenet.weights import load_model, save_weights
from tests.helpers.data import shared_path, write_images
from tests.helpers.runs import TINY, cli


def test_recipes_are_the_papers_and_references() -> None:
    paper = recipes()["paper"]
    assert (paper.optimizer, paper.rmsprop_alpha, paper.momentum) == ("rmsprop", 0.9, 0.9)
    assert paper.scaled_lr() == pytest.approx(0.045)  # per 96 images, at 96
    assert make_config("paper", batch_size=192).scaled_lr() == pytest.approx(0.09)
    assert (paper.lr_decay, paper.weight_decay, paper.options["label_smoothing"]) == (0.98, 4e-5, 0.1)
    assert paper.ema_decay
    tv = recipes()["torchvision"]
    assert (tv.optimizer, tv.lr, tv.lr_decay, tv.weight_decay) == ("sgd", 0.045, 0.98, 4e-5)
    assert recipes()["finetune"].backbone_lr_mult < 1
    default = make_config()  # no data: the embedded digits
    assert (default.recipe, default.model, default.input_size, default.data) == ("modern", "mobilenet_v2_050", 32, None)
    assert default.options == {**asdict(ClassificationSettings()), **DIGITS.options}
    with pytest.raises(ValueError, match="unknown training settings"):
        make_config(learning_rate=1)
    with pytest.raises(ValueError, match="unknown recipe"):
        make_config("fast")


def test_dataset_errors_before_training(tmp_path) -> None:
    write_images(tmp_path / "one" / "cat", 4)
    with pytest.raises(ValueError, match="single class"):
        train(make_config(data=str(tmp_path / "one"), **TINY), progress=False)
    (tmp_path / "one" / "dog").mkdir()
    with pytest.raises(ValueError, match=r"class folder .*dog has no images"):
        scan_folder(tmp_path / "one")
    result = cli("train", "--data", str(tmp_path / "missing"))
    assert result.returncode == 2 and "dataset folder not found" in result.stderr


def test_bad_images_never_kill_a_run(tmp_path) -> None:
    for split, count in (("train", 16), ("val", 4)):
        for name in ("a", "b"):
            write_images(tmp_path / split / name, count)
    bad = tmp_path / "train" / "a"
    (bad / "corrupt.jpg").write_bytes(b"not an image at all")
    (bad / "truncated.jpg").write_bytes((bad / "0.jpg").read_bytes()[:300])
    Image.new("L", (50, 50), 128).save(bad / "gray.png")
    Image.new("CMYK", (50, 50), (10, 20, 30, 0)).save(bad / "cmyk.jpg")
    Image.new("P", (50, 50)).save(bad / "palette.png")
    Image.new("RGB", (4, 4)).save(bad / "tiny.png")
    config = make_config(
        "modern",
        data=str(tmp_path),
        out=str(tmp_path / "run"),
        input_size=32,
        small_input=True,
        model="mobilenet_v2_035",
        batch_size=8,
        epochs=1,
        workers=0,
        ema_decay=None,
    )
    with pytest.warns(UserWarning, match="skipped"):
        result = train(config, progress=False)
    assert result.skipped_images == {"train": 3, "val": 0}  # corrupt, truncated, tiny; the rest converted
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["skipped_images"] == {"train": 3, "val": 0} and summary["train_images"] == 38


@pytest.mark.slow
def test_embedded_default_run_directory(tmp_path) -> None:
    run = tmp_path / "run"
    result = cli("train", "--epochs", "1", "--out", str(run), timeout=600)
    assert result.returncode == 0, result.stderr
    assert "validation loss" in result.stdout and "top1" in result.stdout
    assert {p.name for p in run.iterdir()} >= {
        "config.json",
        "metrics.csv",
        "last.json",
        "best.safetensors",
        "last.safetensors",
        "summary.json",
        "curves.png",
        "checkpoints",
    }
    assert json.loads((run / "config.json").read_text())["model"] == "mobilenet_v2_050"
    rows = (run / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,lr,train_loss") and len(rows) == 2
    model = load_model(run / "best.safetensors")
    assert model.class_names == [str(d) for d in range(10)] and model.config.small_input
    again = cli("train", "--epochs", "1", "--out", str(run))
    assert again.returncode == 2 and "already holds a run" in again.stderr


def test_quantization_aware_training_calibrates_on_evaluation_images_spread_through_the_set() -> None:
    images, classes = load_digits_images()
    plain = LabelledImages(images[:100], classes, Preprocessing(input_size=32))
    augmented = AugmentedImages(plain, Augmentation(scale=(0.1, 0.2)))  # what training draws: calibration does not
    assert calibration_batch(augmented.images, count=300).shape == (100, 3, 32, 32)  # all of them when fewer
    every_third = calibration_batch(augmented.images, count=30)
    assert len(every_third) == 30 and torch.equal(every_third[1], plain[3][0])


@pytest.mark.shared
def test_finetune_from_tflite_keeps_the_pretrained_function(tmp_path) -> None:
    source = shared_path("imagenette")
    for split, count in (("train", 16), ("val", 10)):
        for synset in ("n01440764", "n02102040"):  # tench, English springer
            (tmp_path / split / synset).mkdir(parents=True)
            for image in sorted((source / split / synset).iterdir())[:count]:
                (tmp_path / split / synset / image.name).symlink_to(image)
    weights = shared_path("weights/mobilenet_v2_1.0_224_quant.tflite")
    config = make_config("finetune", weights=str(weights), data=str(tmp_path), input_size=160, batch_size=8,
                         epochs=2, workers=0, out=str(tmp_path / "run"))  # fmt: skip
    run = trainer(config, progress=False)
    assert run.model.config.padding == "tf_same" and run.model.classifier[1].out_features == 2
    assert run.model.preprocessing.mean[0] == pytest.approx(128 / 255)  # the weights' own normalisation
    result = run.run()
    assert result.val.top1 >= 0.9, result.val  # 20 real validation images, two classes


TENCH, SPRINGER = "tench, Tinca tinca", "English springer, English springer spaniel"  # ImageNet's names


@pytest.mark.shared
def test_classes_named_as_imagenet_s_start_where_the_published_classifier_is(tmp_path) -> None:
    """Folders named by ImageNet classes' synonyms keep the published classifier's rows for them: before any training
    it tells real tench from springer spaniels; with every row new, it cannot."""
    source = shared_path("imagenette")
    for split in ("train", "val"):
        for synset, name in (("n01440764", "tench"), ("n02102040", "English springer")):
            (tmp_path / split / name).mkdir(parents=True)
            for image in sorted((source / split / synset).iterdir())[:10]:
                (tmp_path / split / name / image.name).symlink_to(image)
    weights = shared_path("weights/mobilenet_v2_1.0_224_quant.tflite")
    for keep, low, high in ((True, 0.95, 1.0), (False, 0.0, 0.75)):
        task = ClassificationTask()
        config = make_config("finetune", weights=str(weights), data=str(tmp_path), keep_class_rows=keep)
        torch.manual_seed(0)  # the new rows' (at 40-50% on 4 seeds)
        model, data = task.prepare(config)
        assert data.class_rows == {"English springer": [SPRINGER] if keep else [], "tench": [TENCH] if keep else []}
        top1 = task.evaluate(model.eval(), data.val, 10, 0, torch.device("cpu")).top1
        assert low <= top1 <= high, (keep, top1)  # 20 real validation images


def test_weights_without_class_names_keep_their_layer_for_as_many_classes(tmp_path) -> None:
    """As the other tasks do: weights without class names are taken to predict the data's classes where they have
    as many, and keep their trained last layer; with another count the layer is new."""
    for name in ("cat", "dog"):
        write_images(tmp_path / "train" / name, 2)
        write_images(tmp_path / "val" / name, 2)
    for num_classes, kept in ((2, True), (3, False)):
        start = MobileNet(width_mult=0.35, num_classes=num_classes)
        save_weights(start, tmp_path / "start.safetensors")
        config = make_config("finetune", weights=str(tmp_path / "start.safetensors"), data=str(tmp_path), workers=0)
        model, data = ClassificationTask().prepare(config)
        assert (data.class_rows is None) == kept, data.class_rows
        same = torch.equal(model.classifier[1].weight, start.classifier[1].weight)
        assert same == kept and model.class_names == ["cat", "dog"]


def test_its_own_settings_and_no_other_task_s() -> None:
    config = make_config(data="x", mixup=0.2, shortcut="none", crop_scale_min=0.5)
    assert (config.options["mixup"], config.options["shortcut"], config.options["crop_scale_min"]) == (0.2, "none", 0.5)
    with pytest.raises(ValueError, match=r"^--output-stride is a setting of the segmentation task: classification"):
        make_config(data="x", output_stride=8)
    with pytest.raises(ValueError, match=r"--crop-scale-min must be in \(0, 1\]"):
        make_config(data="x", crop_scale_min=0.0)
