"""ONNX, TorchScript and TFLite exports: the same outputs as PyTorch, metadata, and nothing left on failure."""

from __future__ import annotations

import json
import os

import pytest
import torch

import mobilenet
from mobilenet.data.images import image_batch
from mobilenet.inference.export import activations_out_of_place, export_onnx, export_tflite, export_torchscript
from mobilenet.nn.preprocessing import Preprocessing
from mobilenet.weights.format import KEY_CONFIG
from mobilenet.weights.tflite import read_model
from tests.helpers.data import shared_path
from tests.helpers.models import exported_tiny, trained_like


def small_model(**overrides) -> mobilenet.MobileNet:
    model = trained_like(mobilenet.mobilenet_v2(width_mult=0.35, num_classes=3, input_size=64, **overrides))
    model.class_names = ["cat", "dog", "fox"]
    return model


def test_onnx_matches_pytorch_at_any_batch_and_carries_metadata(tmp_path) -> None:
    onnx = pytest.importorskip("onnx", reason="ONNX export needs the onnx extra: pip install 'mobilenet[onnx]'")
    ort = pytest.importorskip("onnxruntime", reason="ONNX export is checked with onnxruntime (the onnx extra)")
    pytest.importorskip("onnxscript", reason="torch's ONNX exporter needs onnxscript (the onnx extra)")
    model = small_model(padding="tf_same", bn_eps=1e-3)
    report = export_onnx(model, tmp_path / "model.onnx", inputs=torch.randn(4, 3, 64, 64))
    assert report.format == "onnx" and report.file_size == (tmp_path / "model.onnx").stat().st_size
    assert report.max_abs_diff < 1e-4 and report.verified_on == "4 given inputs"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]

    proto = onnx.load(tmp_path / "model.onnx")
    props = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(props["mobilenet.config"])["padding"] == "tf_same"
    assert json.loads(props["mobilenet.class_names"]) == ["cat", "dog", "fox"]
    assert Preprocessing.from_json(props["mobilenet.preprocessing"]) == model.preprocessing
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # a named, dynamic batch

    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    x = torch.randn(5, 3, 64, 64)
    (logits,) = session.run(["logits"], {"images": x.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(logits), model(x), rtol=1e-4, atol=1e-4)
    # Traced out of place (the exporter is 1.6-2.5x faster so), each activation in place again after.
    assert all(m.inplace for m in model.modules() if isinstance(m, torch.nn.ReLU6))
    assert {node.op_type for node in proto.graph.node} >= {"Clip", "Conv"}


def test_activations_are_out_of_place_while_traced_and_in_place_again_after() -> None:
    model = small_model()
    relus = [m for m in model.modules() if isinstance(m, torch.nn.ReLU6)]
    assert relus and all(m.inplace for m in relus)
    with pytest.raises(RuntimeError, match="traced"), activations_out_of_place(model):
        assert not any(m.inplace for m in relus)
        raise RuntimeError("traced")
    assert all(m.inplace for m in relus)


@pytest.mark.slow
def test_onnx_of_a_features_only_model_has_one_output_per_map(tmp_path) -> None:
    onnx = pytest.importorskip("onnx", reason="ONNX export needs the onnx extra: pip install 'mobilenet[onnx]'")
    pytest.importorskip("onnxruntime", reason="ONNX export is checked with onnxruntime (the onnx extra)")
    pytest.importorskip("onnxscript", reason="torch's ONNX exporter needs onnxscript (the onnx extra)")
    model = trained_like(mobilenet.create_model("mobilenet_v2", width_mult=0.35, features_only=True, input_size=64))
    report = export_onnx(model, tmp_path / "features.onnx")
    assert report.verified_on == "2 random inputs" and report.max_abs_diff < 1e-4
    outputs = [o.name for o in onnx.load(tmp_path / "features.onnx").graph.output]
    assert outputs == [info.module for info in model.feature_info]


@pytest.mark.parametrize("features_only", [False, True], ids=["classifier", "features"])
def test_torchscript_matches_pytorch_and_carries_metadata(tmp_path, features_only: bool) -> None:
    model = trained_like(
        mobilenet.create_model("mobilenet_v2", width_mult=0.35, input_size=64, features_only=features_only)
    )
    report = export_torchscript(model, tmp_path / "model.pt", inputs=torch.randn(3, 3, 64, 64))
    assert report.max_abs_diff < 1e-4
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "model.pt").stat().st_mode & 0o777 == 0o666 & ~umask  # not the temporary file's 0600
    extra = {"mobilenet.config": "", "mobilenet.preprocessing": ""}
    loaded = torch.jit.load(str(tmp_path / "model.pt"), _extra_files=extra)
    assert json.loads(extra["mobilenet.config"])["input_size"] == 64
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected, got = model(x), loaded(x)
    for ours, theirs in zip(got if features_only else [got], expected if features_only else [expected], strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)


def test_an_export_that_disagrees_is_not_written(tmp_path, monkeypatch) -> None:
    model = small_model()
    (tmp_path / "model.pt").write_bytes(b"the previous good file")
    monkeypatch.setattr(torch.jit, "load", lambda _path: small_model())  # another model's weights
    with pytest.raises(RuntimeError, match=r"differs from PyTorch by .*not written"):
        export_torchscript(model, tmp_path / "model.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]
    assert (tmp_path / "model.pt").read_bytes() == b"the previous good file"


@pytest.mark.shared
def test_checked_on_real_images(tmp_path) -> None:
    files = sorted(shared_path("imagenet-sample").glob("*.JPEG"))[:4]
    model = small_model()
    report = export_torchscript(model, tmp_path / "model.pt", inputs=files)
    assert report.verified_on == "4 images" and report.max_abs_diff < 1e-4
    folder = shared_path("imagenette/val")
    batch = image_batch(folder, model.preprocessing, limit=10)
    assert batch.shape == (10, 3, 64, 64)


def test_image_batch_errors(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"no image files under"):
        image_batch(tmp_path, Preprocessing())
    with pytest.raises(ValueError, match=r"shape \(N, C, H, W\)"):
        image_batch(torch.zeros(3, 64, 64), Preprocessing())
    with pytest.raises(ValueError, match="expected a model of mobilenet's"):
        export_torchscript(torch.nn.Linear(2, 2), tmp_path / "x.pt")


@pytest.mark.parametrize("kind", ["classifier", "segmenter", "detector"])
def test_tflite_matches_pytorch_for_each_kind(tmp_path, kind) -> None:
    """Our own TFLite writer: NHWC float input, maps out channels-last, a detector's anchors as a constant output;
    the command keeps the file only if LiteRT's outputs are PyTorch's."""
    pytest.importorskip("ai_edge_litert", reason="TFLite export is checked in Google's runtime (the tflite extra)")
    _, graph, printed = exported_tiny(tmp_path, kind, ".tflite")
    assert "tflite" in printed and "differ from PyTorch by at most" in printed
    metadata = read_model(graph)[0]
    assert KEY_CONFIG.encode() in {metadata.Metadata(i).Name() for i in range(metadata.MetadataLength())}


def test_tflite_keeps_tf_same_padding(tmp_path) -> None:
    pytest.importorskip("ai_edge_litert", reason="TFLite export is checked in Google's runtime (the tflite extra)")
    report = export_tflite(small_model(padding="tf_same"), tmp_path / "model.tflite", inputs=torch.randn(2, 3, 64, 64))
    assert report.format == "tflite" and report.max_abs_diff < 1e-4
