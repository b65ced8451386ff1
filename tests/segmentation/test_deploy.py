"""Mobile DeepLabv3 through the inference machinery: ONNX export (logits and class indices), deploy, bench.

Small inputs (129x129) keep the PyTorch runs short; an export costs the same at any size (torch's translation).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import mobilenet
from mobilenet.cli import main
from mobilenet.data.images import image_batch, load_image, normalize
from mobilenet.inference.deploy import deploy
from mobilenet.inference.export import ClassIndices, export_onnx, export_torchscript
from mobilenet.segmentation.data import pad_to_crop
from mobilenet.segmentation.litert import LiteRTSegmenter
from mobilenet.segmentation.model import DeepLabV3
from mobilenet.tools.bench import bench_model, build
from tests.helpers.data import shared_path
from tests.helpers.models import trained_like

CORAL = "weights/deeplabv3_mnv2_pascal_quant.tflite"
IMAGE = "segmentation/voc2012/val/JPEGImages/2007_000129.jpg"  # bicycles and people
SIZE = 129
# On a real image, the share of pixels whose class must stay PyTorch's (only near-ties may flip).
MIN_AGREEMENT = 0.999


def need_onnx() -> None:
    pytest.importorskip("onnxruntime", reason="needs onnxruntime: pip install 'mobilenet[onnx]'")
    pytest.importorskip("onnxscript", reason="torch's ONNX exporter needs onnxscript: pip install 'mobilenet[onnx]'")


@pytest.fixture(scope="module")
def coral_small() -> DeepLabV3:
    """Coral's PASCAL VOC DeepLab at 129x129: the config's input size, and so its preprocessing's."""
    model = mobilenet.create_model("deeplabv3_mobilenet_v2", weights=shared_path(CORAL), input_size=SIZE)
    assert model.preprocessing.input_size == SIZE
    return model.eval()


@pytest.fixture(scope="module")
def image(coral_small) -> torch.Tensor:
    return image_batch([shared_path(IMAGE)], coral_small.preprocessing)


def agreement(logits: torch.Tensor, classes: torch.Tensor) -> float:
    return (logits.argmax(1) == classes).float().mean().item()


def test_onnx_logits_agree_with_pytorch_on_a_real_image(tmp_path, coral_small, image) -> None:
    need_onnx()
    import onnx
    import onnxruntime as ort

    report = export_onnx(coral_small, tmp_path / "deeplab.onnx", inputs=[shared_path(IMAGE)])
    assert report.max_abs_diff < 1e-3 and report.class_agreement is None and report.verified_on == "1 images"
    proto = onnx.load(tmp_path / "deeplab.onnx")
    assert {p.key: p.value for p in proto.metadata_props}["mobilenet.kind"] == "deeplabv3"
    session = ort.InferenceSession(str(tmp_path / "deeplab.onnx"), providers=["CPUExecutionProvider"])
    batch = torch.cat([image, torch.randn(2, 3, SIZE, SIZE)])  # any batch size
    (logits,) = session.run(["logits"], {"images": batch.numpy()})
    with torch.no_grad():
        expected = coral_small(batch)
    assert logits.shape == (3, 21, SIZE, SIZE)
    assert np.abs(logits - expected.numpy()).max() < 1e-3
    assert agreement(expected[:1], torch.from_numpy(logits[:1]).argmax(1)) >= MIN_AGREEMENT
    assert set(expected[0].argmax(0).unique().tolist()) > {0}  # the image holds objects, not just background


def test_cli_exports_class_indices_checked_on_a_real_image(tmp_path, capsys) -> None:
    need_onnx()
    import onnxruntime as ort

    out = tmp_path / "classes.onnx"
    assert main(["export", str(shared_path(CORAL)), str(out), "--argmax", "--images", str(shared_path(IMAGE)),
                 "--json"]) == 0  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert report["max_abs_diff"] is None and report["class_agreement"] >= MIN_AGREEMENT
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (output,) = session.get_outputs()
    assert output.name == "classes" and output.type == "tensor(int64)"
    (classes,) = session.run(None, {"images": np.zeros((2, 3, 513, 513), np.float32)})
    assert classes.shape == (2, 513, 513)  # a dynamic batch of (H, W) class maps
    assert main(["export", str(shared_path(CORAL)), str(tmp_path / "x.tflite"), "--format", "tflite", "--argmax"]) == 2
    assert "--argmax writes class indices to ONNX or TorchScript" in capsys.readouterr().err


def test_argmax_export_checks_class_indices_and_keeps_no_file_that_disagrees(tmp_path, monkeypatch) -> None:
    model = trained_like(DeepLabV3(input_size=65))
    report = export_torchscript(model, tmp_path / "classes.pt", argmax=True)
    assert report.max_abs_diff is None and report.class_agreement >= MIN_AGREEMENT
    assert torch.jit.load(str(tmp_path / "classes.pt"))(torch.randn(3, 3, 65, 65)).shape == (3, 65, 65)
    classes = ClassIndices(model)
    # A file whose every class is off by one (two random models may well agree: one class everywhere).
    monkeypatch.setattr(torch.jit, "load", lambda _path: lambda x: (classes(x) + 1) % model.num_classes)
    with pytest.raises(RuntimeError, match=r"gives PyTorch's class on .* of outputs \(needs 99.9%\); not written"):
        export_torchscript(model, tmp_path / "other.pt", argmax=True)
    assert [p.name for p in tmp_path.iterdir()] == ["classes.pt"]


def test_deploy_openvino_agrees_with_pytorch(coral_small, image) -> None:
    pytest.importorskip("openvino", reason="needs openvino: pip install 'mobilenet[openvino]'")
    need_onnx()
    deployed = deploy(coral_small, "openvino", threads=1)
    batch = torch.cat([image, torch.randn(1, 3, SIZE, SIZE)])
    logits = deployed(batch)
    with torch.no_grad():
        expected = coral_small(batch)
    assert logits.shape == (2, 21, SIZE, SIZE) and logits.dtype == torch.float32
    assert (logits - expected).abs().max() < 1e-3
    assert agreement(logits[:1], expected[:1].argmax(1)) >= MIN_AGREEMENT
    with pytest.raises(ValueError, match=r"expected a float batch of shape \(N, 3, 129, 129\)"):
        deployed(torch.randn(1, 3, 513, 513))  # the graph is exported for one resolution


def test_bench_times_deeplab_against_ours_eager() -> None:
    model = mobilenet.create_model("deeplabv3_mobilenet_v2", input_size=SIZE)
    result = bench_model(model, threads=1, batch=2, rounds=1, calls=1, precisions=())
    assert result.kind == "deeplabv3" and result.resolution == SIZE
    assert [p.name for p in result.paths] == ["ours eager (NCHW)", "optimize (folded, channels-last)"]
    assert any("torchvision and timm have no deeplabv3" in note for note in result.notes)
    assert result.madds > 100e6 and all(p.b1_ms > 0 and p.throughput > 0 for p in result.paths)
    with pytest.raises(ValueError, match="torchvision has no deeplabv3 model"):
        bench_model(model, reference="torchvision", precisions=())
    with pytest.raises(ValueError, match="peak memory rebuilds the model as a MobileNet"):
        bench_model(model, memory=True, precisions=())


def test_litert_reference_runs_the_coral_file_as_google_feeds_it() -> None:
    pytest.importorskip("ai_edge_litert", reason="needs Google's runtime: pip install ai-edge-litert")
    path = shared_path(CORAL)
    model = mobilenet.create_model("deeplabv3_mobilenet_v2", weights=path)
    pixels = pad_to_crop(load_image(shared_path(IMAGE))).pixels[None]
    contender = build(("reference", str(path)), model, 1, None)
    one, _ = contender.inputs(normalize(pixels, model.preprocessing))
    assert np.array_equal(one, pixels.permute(0, 2, 3, 1).numpy())  # pixel / 127.5 - 1 back to its raw pixels
    (classes,) = contender.run(one)
    assert torch.equal(classes, LiteRTSegmenter(path)(pixels))
    assert contender.name == "LiteRT deeplabv3_mnv2_pascal_quant.tflite" and contender.size_bytes == path.stat().st_size
    with pytest.raises(ValueError, match="takes 513x513 images, got 129x129"):
        contender.inputs(torch.zeros(1, 3, SIZE, SIZE))
