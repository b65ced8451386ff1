"""TF-slim's checkpoints and frozen graphs, read without TensorFlow, checked against TensorFlow's own logits.

The fixture (``tests/data/tf_slim``, written by ``benchmarks/tf_slim_reference.py`` in a TensorFlow environment):
MobileNetV1 0.25 at 128 and MobileNetV2 0.35 at 96 with 1001 classes, under TF-slim's variable names and ops,
saved by ``tf.compat.v1.train.Saver`` (``.ckpt.index`` + one data shard) and frozen by
``convert_variables_to_constants`` (``_frozen.pb``), with TensorFlow's logits on a deterministic input and on two
ImageNet images preprocessed as TF-slim evaluates.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from mobilenet.data.images import image_batch
from mobilenet.registry import create_model, kind_of_file, load
from mobilenet.weights import load_model, tf_slim
from mobilenet.weights.tf_checkpoint import read_tf_checkpoint
from mobilenet.weights.verify import verify
from tests.helpers.data import shared_path, tensorflow_files
from tests.helpers.runs import cli

MODELS = {"mobilenet_v1_0.25_128": ("mobilenet_v1_025", 128), "mobilenet_v2_0.35_96": ("mobilenet_v2_035", 96)}
# float32 through ~50 layers: TensorFlow's and our sums differ in order. A wrong convention costs 1.7 to 12.
TOLERANCE = 1e-3


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return tensorflow_files(tmp_path_factory.mktemp("tf_slim"))


def synthetic_input(size: int) -> torch.Tensor:
    """The generator's deterministic input, NHWC in [-1, 1], as our NCHW batch."""
    values = np.sin(0.01 * np.arange(size * size * 3, dtype=np.float32)).reshape(1, size, size, 3)
    return torch.from_numpy(values).permute(0, 3, 1, 2)


def logits(model: torch.nn.Module, pixels: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return model.eval()(pixels).numpy()


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("form", [".ckpt", ".ckpt.index", ".ckpt.data-00000-of-00001", "_frozen.pb"])
def test_logits_equal_tensorflows(files, name, form) -> None:
    if form.endswith(".pb"):
        pytest.importorskip("tensorboard", reason="frozen graphs are read with TensorBoard's protos")
    reference = np.load(files / "reference.npz")
    model = load(files / f"{name}{form}")
    config = model.config
    assert (config.arch, config.input_size, config.padding, config.bn_eps) == (
        name[:12],
        MODELS[name][1],
        "tf_same",
        1e-3,
    )
    assert model.num_classes == 1000  # TensorFlow's background, class 0 of 1001, dropped
    theirs = reference[f"{name}/synthetic_logits"][None, 1:]
    assert np.abs(logits(model, synthetic_input(config.input_size)) - theirs).max() < TOLERANCE


@pytest.mark.parametrize("name", MODELS)
def test_each_wrong_convention_shows(files, name) -> None:
    """What a converter that misses one of TF-slim's conventions gets: far from TensorFlow's logits."""
    theirs = np.load(files / "reference.npz")[f"{name}/synthetic_logits"][None, 1:]
    for wrong in ({"padding": "symmetric"}, {"bn_eps": 1e-5}):
        model = load(files / f"{name}.ckpt", **wrong)
        assert np.abs(logits(model, synthetic_input(model.config.input_size)) - theirs).max() > 1.0, wrong


@pytest.mark.parametrize("name", MODELS)
def test_images_with_tf_slims_evaluation_preprocessing(files, name) -> None:
    """Real images through our reading of TF-slim's preprocessing (central 87.5%, TF1 bilinear): TensorFlow's logits."""
    reference = np.load(files / "reference.npz")
    images = [shared_path(f"imagenet-sample/{image}") for image in reference["image_names"]]
    model = load(files / f"{name}.ckpt")
    assert model.preprocessing.resize == "central_fraction" and model.preprocessing.crop_pct == 0.875
    mine = logits(model, image_batch(images, model.preprocessing))
    assert np.abs(mine - reference[f"{name}/image_logits"][:, 1:]).max() < TOLERANCE


def test_checkpoint_and_frozen_graph_hold_the_same_tensors(files) -> None:
    """Two files TensorFlow wrote from one session: the tensor bundle read here equals the graph's constants."""
    pytest.importorskip("tensorboard", reason="frozen graphs are read with TensorBoard's protos")
    from mobilenet.weights.graphdef import load_frozen_graph

    for name in MODELS:
        checkpoint = read_tf_checkpoint(files / f"{name}.ckpt")
        frozen = load_frozen_graph(files / f"{name}_frozen.pb").variables()
        assert set(checkpoint) == set(frozen) and len(checkpoint) > 100
        for key, value in checkpoint.items():
            assert value.dtype == np.float32 and np.array_equal(value, frozen[key]), key


def test_registry_routes_every_form_to_classification(files) -> None:
    name = "mobilenet_v1_0.25_128"
    for form in (".ckpt", ".ckpt.index", ".ckpt.data-00000-of-00001", "_frozen.pb"):
        assert kind_of_file(files / f"{name}{form}").name == "classification"
    model = create_model("mobilenet_v1_025", weights=files / f"{name}.ckpt")  # as a named model's weights
    assert model.config.input_size == 128


def test_moving_averages_are_read_where_training_kept_them(files, monkeypatch) -> None:
    """TF-slim evaluates a model trained with --moving_average_decay on the averages: so does the reader."""
    variables = read_tf_checkpoint(files / "mobilenet_v1_0.25_128.ckpt")
    biases = "MobilenetV1/Logits/Conv2d_1c_1x1/biases"
    averaged = {**variables, f"{biases}/ExponentialMovingAverage": variables[biases] + 1.0}
    monkeypatch.setattr(tf_slim, "read_tf_checkpoint", lambda path: averaged)
    model = load(files / "mobilenet_v1_0.25_128.ckpt")
    assert torch.equal(model.classifier[1].bias, torch.from_numpy(variables[biases][1:] + 1.0))


@pytest.mark.parametrize("name", MODELS)
def test_verify_beside_tensorflow_catches_a_wrong_reading(files, name) -> None:
    """Where TensorFlow is installed beside (a user's environment, or the generator's), verify runs the frozen graph."""
    pytest.importorskip("tensorflow", reason="TensorFlow lives in an environment of its own: run this test there")
    pytest.importorskip("tensorboard", reason="frozen graphs are read with TensorBoard's protos")
    found = verify(files / f"{name}_frozen.pb")
    assert found.reference.startswith("TensorFlow ") and found.agreement == 1.0 and found.max_abs_diff < TOLERANCE
    assert not found.wrong_conventions
    wrong = verify(files / f"{name}_frozen.pb", padding="symmetric")
    assert [c.name for c in wrong.wrong_conventions] == ["padding"] and wrong.agreement < 1.0


def test_verify_names_the_conventions_and_why_tensorflow_is_not_run(files) -> None:
    found = verify(files / "mobilenet_v2_0.35_96.ckpt", images=[])
    assert (found.format, found.reference, found.background_dropped) == ("tf_checkpoint", None, True)
    assert "TensorFlow" in found.why_no_reference and found.padding == "tf_same" and found.bn_eps == 1e-3


def test_predict_takes_a_checkpoint_by_its_prefix(files) -> None:
    """``mobilenet predict --weights model.ckpt``: the top class's probability is TensorFlow's, from its logits."""
    reference = np.load(files / "reference.npz")
    image = shared_path(f"imagenet-sample/{reference['image_names'][0]}")
    done = cli("predict", "--weights", str(files / "mobilenet_v2_0.35_96.ckpt"), str(image), "--json")
    assert done.returncode == 0, done.stderr
    theirs = torch.from_numpy(reference["mobilenet_v2_0.35_96/image_logits"][0, 1:]).softmax(0)
    assert json.loads(done.stdout.splitlines()[0])["top"][0]["prob"] == pytest.approx(theirs.max().item(), abs=1e-4)


def test_damaged_checkpoints_fail_in_one_line(files, tmp_path) -> None:
    name = "mobilenet_v1_0.25_128.ckpt"
    shutil.copy(files / f"{name}.index", tmp_path / f"{name}.index")
    with pytest.raises(FileNotFoundError, match=r"needs its data shard .*copy the whole checkpoint"):
        read_tf_checkpoint(tmp_path / name)
    data = (files / f"{name}.data-00000-of-00001").read_bytes()
    (tmp_path / f"{name}.data-00000-of-00001").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="is truncated"):
        read_tf_checkpoint(tmp_path / name)
    (tmp_path / "other.ckpt.index").write_bytes(b"not a table" * 10)
    with pytest.raises(ValueError, match="is not a TensorFlow checkpoint index"):
        load(tmp_path / "other.ckpt")


def test_other_networks_and_truncated_graphs_fail_in_one_line(files, tmp_path) -> None:
    with pytest.raises(ValueError, match="no TF-slim MobileNet classifier"):  # DeepLab's: no Conv_1, no logits
        load_model(files / "deeplabv3_mnv2_dm05_129.ckpt")
    pytest.importorskip("tensorboard", reason="frozen graphs are read with TensorBoard's protos")
    graph = (files / "mobilenet_v1_0.25_128_frozen.pb").read_bytes()
    (tmp_path / "cut_frozen.pb").write_bytes(graph[: len(graph) // 3])
    with pytest.raises(ValueError, match="is not a TensorFlow GraphDef") as error:
        load(tmp_path / "cut_frozen.pb")
    assert "\n" not in str(error.value)
