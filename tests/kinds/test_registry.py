"""The one registry of model kinds: what it lists, how it tells a file's kind from its content, and the one-line
answers it gives where a model, a file or a setting of one kind meets another."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import asdict, replace
from pathlib import Path

import pytest

import mobilenet
from mobilenet import registry
from mobilenet.kinds import Option
from mobilenet.tasks import make_config, recipes, train
from mobilenet.training.config import TrainConfig
from mobilenet.weights.format import save_weights
from tests.helpers.data import shared_path
from tests.helpers.faults import assert_refused, run_in_process
from tests.helpers.runs import TINY, cli
from tests.kinds.keypoints import KIND
from tests.kinds.plugin import plugin_installed


def test_the_built_in_kinds_and_their_names() -> None:
    kinds = registry.kinds()
    assert [kind.name for kind in kinds] == ["classification", "segmentation", "detection"]
    assert [kind.file_kind for kind in kinds] == ["mobilenet", "deeplabv3", "ssd"]
    assert [kind.command for kind in kinds] == ["predict", "segment", "detect"]
    assert registry.kind() is kinds[0] and [k for k in kinds if k.fallback] == [kinds[0]]
    assert registry.kind_of_model("deeplabv3_mobilenet_v2").name == "segmentation"
    assert registry.list_models("ssd*") == ["ssd_mobilenet_v1", "ssdlite_mobilenet_v1", "ssdlite_mobilenet_v2"]
    assert set(recipes()) == {"paper", "torchvision", "modern", "finetune", "qat", "deeplab", "ssdlite"}
    with pytest.raises(ValueError, match=r"^unknown task 'pose': choose one of classification, segmentation, detec"):
        registry.kind("pose")


def test_a_kind_is_refused_where_it_clashes_with_one_registered() -> None:
    named_detection = {
        "name": "detection",
        "recipes": {"keypoints": replace(KIND.recipes["keypoints"], task="detection")},
    }
    clashes = {
        "task name 'detection'": named_detection,
        "file kind 'ssd'": {"file_kind": "ssd"},
        "model names 'mobilenet_v2'": {"models": {**KIND.models, "mobilenet_v2": KIND.config()}},
        "recipe names 'paper'": {"recipes": {"paper": replace(KIND.recipes["keypoints"], recipe="paper")},
                                 "default_recipe": "paper"},
    }  # fmt: skip
    for what, clash in clashes.items():
        with pytest.raises(ValueError, match=f"has the {what} of kind"):
            registry.register(replace(KIND, **clash))
    with pytest.raises(ValueError, match="another kind already does"):
        registry.register(replace(KIND, fallback=True))
    with pytest.raises(ValueError, match="its default model 'x' is not one of its models"):
        replace(KIND, default_model="x")
    assert registry.register(KIND) is KIND
    try:
        assert registry.kind("keypoints") is KIND and "keypoints_mobilenet_v2_035" in mobilenet.list_models()
    finally:
        registry.unregister("keypoints")
    assert "keypoints_mobilenet_v2_035" not in mobilenet.list_models()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A small model of each built-in kind, saved as our safetensors."""
    root = tmp_path_factory.mktemp("files")
    models = {
        "classification": mobilenet.create_model("mobilenet_v2_035", num_classes=3),
        "segmentation": mobilenet.create_model("deeplabv3_mobilenet_v2", width_mult=0.35, input_size=64),
        "detection": mobilenet.create_model("ssdlite_mobilenet_v2", width_mult=0.35, input_size=64, num_classes=3),
    }
    for name, model in models.items():
        save_weights(model, root / f"{name}.safetensors")
    return {name: root / f"{name}.safetensors" for name in models}


def test_a_file_s_kind_is_read_from_its_content(files: dict[str, Path], tmp_path: Path) -> None:
    for name, path in files.items():
        renamed = tmp_path / f"weights-{name}"  # no suffix to go by but the header's
        shutil.copy(path, renamed.with_suffix(".safetensors"))
        assert registry.kind_of_file(renamed.with_suffix(".safetensors")).name == name
        assert registry.kind_of(registry.load(path)).name == name
    with pytest.raises(ValueError, match="is a folder: pass the weights file inside it"):
        registry.kind_of_file(tmp_path)
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        registry.kind_of_file(tmp_path / "missing.safetensors")
    (tmp_path / "text.tflite").write_text("not a flatbuffer at all")
    with pytest.raises(ValueError, match="is not a TFLite file"):
        registry.kind_of_file(tmp_path / "text.tflite")


@pytest.mark.shared
def test_google_s_files_are_told_apart_by_their_graphs() -> None:
    found = {
        name: registry.kind_of_file(shared_path(f"weights/{name}")).name
        for name in ("mobilenet_v2_1.0_224_quant.tflite", "deeplabv3_mnv2_pascal_quant.tflite")
    }
    assert found == {"mobilenet_v2_1.0_224_quant.tflite": "classification",
                     "deeplabv3_mnv2_pascal_quant.tflite": "segmentation"}  # fmt: skip


def test_a_model_and_weights_of_another_kind_are_refused_in_one_line(files: dict[str, Path]) -> None:
    with pytest.raises(registry.WrongKind, match="holds a segmentation model, not a detection one") as refused:
        mobilenet.create_model("ssdlite_mobilenet_v2", weights=files["segmentation"])
    assert "\n" not in str(refused.value)
    with pytest.raises(ValueError, match="are weights of deeplabv3_mobilenet_v2, not of mobilenet_v2"):
        mobilenet.create_model("mobilenet_v2", weights="deeplabv3_mobilenet_v2.coral_uint8_voc")
    with pytest.raises(ValueError, match="features_only gives the feature maps of a MobileNet"):
        mobilenet.create_model("deeplabv3_mobilenet_v2", features_only=True)


def test_settings_of_another_task_are_refused_naming_only_what_was_given() -> None:
    with pytest.raises(ValueError, match=r"^--mixup is a setting of the classification task: detection takes none$"):
        make_config(task="detection", data="x", mixup=0.2)
    with pytest.raises(ValueError, match=r"^--dropout is a setting of the classification and segmentation task"):
        make_config(task="detection", data="x", dropout=0.1)
    with pytest.raises(ValueError, match=r"unknown training settings \['learning_rate'\]"):
        make_config(learning_rate=1)
    assert make_config(task="detection").recipe == "ssdlite"  # each task's own default recipe
    assert make_config("modern", task="segmentation").options == asdict(registry.kind("segmentation").settings())


@pytest.mark.parametrize("task", ["detection", "segmentation"])
def test_train_without_data_names_only_what_is_missing(task: str) -> None:
    line = assert_refused(run_in_process(["train", "--task", task]))
    assert f"{task} learns from --data" in line, line
    assert re.findall(r"--[a-z-]+", line) == ["--data"], line


def test_a_run_saved_before_tasks_had_settings_of_their_own_still_resumes(tmp_path: Path) -> None:
    """config.json once held every task's settings beside the common ones: such a run goes on, its own settings
    taken from there and the others' left out."""
    run = tmp_path / "run"
    train(make_config(**{**TINY, "epochs": 1}, workers=0, out=str(run)), progress=False)
    saved = json.loads((run / "config.json").read_text())
    legacy = {key: value for key, value in saved.items() if key != "options"} | saved["options"]
    (run / "config.json").write_text(json.dumps(legacy, indent=2))
    assert TrainConfig.from_json(run / "config.json").options == saved["options"]
    resumed = cli("train", "--resume", str(run), "--epochs", "2", timeout=600)  # extended by an epoch
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((run / "config.json").read_text())["options"] == saved["options"]


def test_a_plugin_installed_as_a_distribution_is_in_every_process(tmp_path: Path) -> None:
    with plugin_installed(tmp_path / "plugin"):
        listed = cli("list", "keypoints*", "--json")
        assert listed.returncode == 0, listed.stderr
        assert [model["task"] for model in json.loads(listed.stdout)] == ["keypoints"]
        helped = cli("train", "--help")
        assert "settings of the keypoints task:" in helped.stdout and "--radius" in helped.stdout


def test_an_option_is_declared_by_the_kinds_that_take_it() -> None:
    option = Option("ids", "the ids", Path)
    assert option.flag_name == "--ids"
    takers = {kind.name: [o.name for o in kind.eval_options] for kind in registry.kinds()}
    assert takers == {"classification": ["class_index"], "segmentation": ["ids", "scales", "flip"],
                      "detection": ["split", "max_detections"]}  # fmt: skip
