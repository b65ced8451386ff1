"""TensorFlow DeepLab's Mobile DeepLabv3 checkpoints and frozen graphs, read without TensorFlow, checked against
TensorFlow's outputs: a V2 0.5 DeepLab (Coral's ``dm05`` widths, whole channels) at output stride 8 with the head's
BatchNorm at eps 1e-5, written by ``benchmarks/tf_slim_reference.py`` (``tests/data/tf_slim``)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from mobilenet.registry import kind_of_file, load, verify
from mobilenet.segmentation.load import load_deeplab
from mobilenet.segmentation.tf_deeplab import is_tf_deeplab
from tests.helpers.data import tensorflow_files

NAME, SIZE = "deeplabv3_mnv2_dm05_129", 129
# TensorFlow's float32 logits are themselves ~3e-3 from ours in float64; a wrong convention costs 4 to 97.
TOLERANCE = 1e-2


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return tensorflow_files(tmp_path_factory.mktemp("tf_deeplab"))


def outputs(model: torch.nn.Module) -> np.ndarray:
    """Logits [H, W, classes] on the generator's deterministic input."""
    values = np.sin(0.01 * np.arange(SIZE * SIZE * 3, dtype=np.float32)).reshape(1, SIZE, SIZE, 3)
    with torch.no_grad():
        return model.eval()(torch.from_numpy(values).permute(0, 3, 1, 2))[0].permute(1, 2, 0).numpy()


@pytest.mark.parametrize("form", [".ckpt", ".ckpt.index", "_frozen.pb"])
def test_logits_and_masks_equal_tensorflows(files, form) -> None:
    if form.endswith(".pb"):
        pytest.importorskip("tensorboard", reason="frozen graphs are read with TensorBoard's protos")
    reference = np.load(files / "reference.npz")
    path = files / f"{NAME}{form}"
    assert is_tf_deeplab(path) and kind_of_file(path).name == "segmentation"
    model = load(path)
    config = model.config
    read_as = (config.width_mult, config.divisible_by, config.output_stride, config.bn_eps, config.head_bn_eps)
    assert read_as == (0.5, 1, 8, 1e-3, 1e-5)  # the frozen graph says its own; a checkpoint, DeepLab's published
    logits = outputs(model)
    assert np.abs(logits[::8, ::8] - reference[f"{NAME}/synthetic_logits"]).max() < TOLERANCE
    assert (logits.argmax(-1) == reference[f"{NAME}/synthetic_mask"]).mean() > 0.999


def test_each_wrong_convention_shows(files) -> None:
    """Output stride 16, or the backbone's eps in the head: what a reading that misses DeepLab's settings gets."""
    theirs = np.load(files / "reference.npz")[f"{NAME}/synthetic_logits"]
    for wrong in ({"output_stride": 16}, {"head_bn_eps": 1e-3}):
        assert np.abs(outputs(load(files / f"{NAME}.ckpt", **wrong))[::8, ::8] - theirs).max() > 1.0, wrong


def test_classifier_files_are_not_deeplab(files) -> None:
    for form in (".ckpt", "_frozen.pb"):
        assert not is_tf_deeplab(files / f"mobilenet_v2_0.35_96{form}")
        with pytest.raises(ValueError, match="holds no Mobile DeepLabv3"):
            load_deeplab(files / f"mobilenet_v2_0.35_96{form}")


def test_verify_beside_tensorflow(files) -> None:
    """Where TensorFlow is installed beside, verify runs DeepLab's frozen graph and agrees on every pixel."""
    pytest.importorskip("tensorflow", reason="TensorFlow lives in an environment of its own: run this test there")
    pytest.importorskip("tensorboard", reason="frozen graphs are read with TensorBoard's protos")
    found = verify(files / f"{NAME}_frozen.pb")  # at the graph's input size
    assert found.reference.startswith("TensorFlow ") and found.agreement > 0.999 and found.measure == "pixels"
    assert found.class_names[0] == "background"


def test_verify_without_tensorflow_says_so(files) -> None:
    if importlib.util.find_spec("tensorflow") is not None:
        pytest.skip("TensorFlow is installed here: test_verify_beside_tensorflow runs it")
    found = verify(files / f"{NAME}_frozen.pb", images=[])
    assert (found.format, found.reference, found.measure) == ("tf_graph", None, "pixels")
    assert "No module named 'tensorflow'" in found.why_no_reference and found.class_names[0] == "background"


def test_a_checkpoint_named_as_deeplab_names_it(files, tmp_path, monkeypatch) -> None:
    """DeepLab's published checkpoints are ``model.ckpt-30000``: the prefix in the working folder is a file, not the
    name of published weights."""
    for suffix in (".index", ".data-00000-of-00001"):
        (tmp_path / f"model.ckpt-30000{suffix}").write_bytes((files / f"{NAME}.ckpt{suffix}").read_bytes())
    monkeypatch.chdir(tmp_path)
    assert load("model.ckpt-30000").config.output_stride == 8
