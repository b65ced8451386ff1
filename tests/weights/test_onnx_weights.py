"""Weights recovered from ONNX graphs, checked against ONNX Runtime running the same file.

The graphs are written by PyTorch's two exporters as users run them: torchvision's model and ours, with each
BatchNorm folded into a bias (the new exporter, and the old one's defaults) or kept as a node with the classifier
a 1x1 conv on the pooled features (the ONNX model zoo's layout), TensorFlow's padding, a 1001st background class.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import onnx
import pytest
import torch
from benchmarks.references import import_torchvision

from mobilenet.inference.export import export_onnx
from mobilenet.registry import create_model
from mobilenet.runtimes.onnxruntime import ort_session
from mobilenet.weights import load_model
from mobilenet.weights.verify import verify
from tests.helpers.data import shared_path
from tests.helpers.models import trained_like


def exported(model: torch.nn.Module, path, size: int, **settings) -> None:
    """``torch.onnx.export`` as a user calls it, its progress chatter silenced."""
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model.eval(), (torch.randn(1, 3, size, size),), path, verbose=False, **settings)
    finally:
        logging.disable(logging.NOTSET)


def agrees_with_onnxruntime(path, batch: int = 2) -> tuple[object, np.ndarray, np.ndarray]:
    """Our model read from ``path``, its logits and ONNX Runtime's on the same random images."""
    model = load_model(path).eval()
    size = model.config.input_size
    images = np.random.default_rng(0).uniform(-2, 2, (batch, 3, size, size)).astype(np.float32)
    session = ort_session(path)
    theirs = session.run(None, {session.get_inputs()[0].name: images})[0].reshape(batch, -1)
    with torch.no_grad():
        mine = model(torch.from_numpy(images)).numpy()
    return model.config, mine, theirs


def close(mine: np.ndarray, theirs: np.ndarray) -> bool:
    return mine.shape == theirs.shape and np.abs(mine - theirs).max() <= 1e-4 * max(1.0, np.abs(theirs).max())


@pytest.mark.reference
@pytest.mark.parametrize("dynamo", [True, False], ids=["torch.export", "torchscript"])
def test_torchvision_exports_from_both_exporters(tmp_path, dynamo) -> None:
    torchvision = import_torchvision()
    torch.manual_seed(0)
    exported(trained_like(torchvision.models.mobilenet_v2(width_mult=0.5)), tmp_path / "tv.onnx", 160, dynamo=dynamo)
    config, mine, theirs = agrees_with_onnxruntime(tmp_path / "tv.onnx", batch=1)  # exported with a fixed batch
    read = (config.arch, config.width_mult, config.input_size, config.padding, config.num_classes)
    assert read == ("mobilenet_v2", 0.5, 160, "symmetric", 1000)
    assert close(mine, theirs) and (mine.argmax(1) == theirs.argmax(1)).all()


def test_batchnorm_nodes_a_conv_classifier_and_a_background_class(tmp_path) -> None:
    """The zoo's layout: BatchNormalization nodes kept, the classifier a 1x1 conv; TensorFlow's 1001 classes."""
    torch.manual_seed(0)
    model = trained_like(create_model("mobilenet_v1_050", classifier="conv", num_classes=1001, input_size=128))
    keep = {"dynamo": False, "do_constant_folding": False, "training": torch.onnx.TrainingMode.PRESERVE}
    exported(model, tmp_path / "bn.onnx", 128, **keep)
    assert "BatchNormalization" in {node.op_type for node in onnx.load(tmp_path / "bn.onnx").graph.node}
    config, mine, theirs = agrees_with_onnxruntime(tmp_path / "bn.onnx", batch=1)
    assert (config.arch, config.width_mult, config.num_classes, config.bn_eps) == ("mobilenet_v1", 0.5, 1000, 1e-5)
    assert close(mine, theirs[:, 1:])  # background dropped: class i is ImageNet's i


def test_our_tf_same_export_keeps_its_settings_and_a_bare_one_shows_its_padding(tmp_path) -> None:
    torch.manual_seed(0)
    model = trained_like(create_model("mobilenet_v2_035", padding="tf_same", bn_eps=1e-3, num_classes=5, input_size=96))
    model.class_names = list("abcde")
    export_onnx(model, tmp_path / "ours.onnx")
    config, mine, theirs = agrees_with_onnxruntime(tmp_path / "ours.onnx")
    assert (config.padding, config.num_classes, load_model(tmp_path / "ours.onnx").class_names) == (
        "tf_same",
        5,
        list("abcde"),
    )
    assert close(mine, theirs)

    bare = onnx.load(tmp_path / "ours.onnx")
    del bare.metadata_props[:]  # anyone's export: nothing but the graph
    onnx.save(bare, tmp_path / "bare.onnx")
    config, mine, theirs = agrees_with_onnxruntime(tmp_path / "bare.onnx")
    assert (config.padding, config.bn_eps, config.input_size) == ("tf_same", 1e-3, 96)  # from the graph's input
    assert close(mine, theirs)


def test_bad_onnx_files_get_one_line(tmp_path) -> None:
    (tmp_path / "text.onnx").write_text("not a graph")
    other = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())
    exported(other, tmp_path / "other.onnx", 32, dynamo=False)
    data = (tmp_path / "other.onnx").read_bytes()
    (tmp_path / "cut.onnx").write_bytes(data[: len(data) // 2])
    expected = {
        "text.onnx": "damaged or foreign file, not ONNX",
        "cut.onnx": "damaged or foreign file, not ONNX",
        "other.onnx": r"its 1 convolutions \(first \(4, 3, 3, 3\), last \(4, 3, 3, 3\)\) match no MobileNetV1/V2",
    }
    for name, message in expected.items():
        with pytest.raises(ValueError, match=message) as caught:
            load_model(tmp_path / name)
        assert "\n" not in str(caught.value)


@pytest.mark.shared
def test_verify_runs_onnxruntime_beside_and_names_a_wrong_padding(tmp_path) -> None:
    """Google's weights (Coral's V1 0.25, dequantized) in a bare ONNX graph: on real images we agree with ONNX
    Runtime on every one, and a symmetric padding is named as wrong."""
    model = load_model(shared_path("weights/mobilenet_v1_0.25_128_quant.tflite"))
    export_onnx(model, tmp_path / "ours.onnx")
    bare = onnx.load(tmp_path / "ours.onnx")
    del bare.metadata_props[:]
    onnx.save(bare, tmp_path / "v1.onnx")
    images = sorted(shared_path("imagenet-sample").glob("*.JPEG"))[::25]
    found = verify(tmp_path / "v1.onnx", images)
    assert (found.format, found.padding, found.arch, found.width_mult) == ("onnx", "tf_same", "mobilenet_v1", 0.25)
    assert found.reference.startswith("ONNX Runtime ") and found.agreement == 1.0 and found.wrong_conventions == []
    wrong = verify(tmp_path / "v1.onnx", images, padding="symmetric")
    assert [c.name for c in wrong.wrong_conventions] == ["padding"], wrong.lines()
