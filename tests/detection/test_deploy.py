"""SSD detectors through the inference machinery: ONNX export (raw outputs + anchors), deploy, int8, bench.

Google's COCO SSD (TF Lite's ``detect.tflite``, imported in float) on real COCO128 val images: the detections of
every exported or deployed graph, post-processed by the library, must be PyTorch's. An export costs seconds at
any size (torch's translation, about 7 s of CPU here), so each backend is built once, and those beyond the
export itself and ONNX Runtime's are marked slow.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mobilenet.cli import main
from mobilenet.data.images import as_rgb_image, to_tensor
from mobilenet.detection.boxes import clip_boxes
from mobilenet.detection.data import DetectionSet, coco_detection
from mobilenet.detection.evaluate import class_map_by_name, evaluate_detector
from mobilenet.detection.load import load_detector
from mobilenet.detection.model import SSD
from mobilenet.detection.postprocess import postprocess
from mobilenet.detection.predict import object_names, resize_to_input, run_detector
from mobilenet.inference.deploy import DeployedDetector, deploy, weight_bytes
from mobilenet.inference.export import export_onnx
from mobilenet.inference.optimize import optimize
from mobilenet.tools.bench import bench, bench_model
from tests.helpers.data import shared_path

pytestmark = pytest.mark.shared

GOOGLE = "weights/ssd_mobilenet_v1_075_coco_quant.tflite"
COCO128 = "detection/coco128"
IMAGES = 4  # the first COCO128 val images
SCORE = 0.3  # what ``mobilenet detect`` shows: the detections compared one by one
RAW_TOLERANCE = 1e-3  # box codes and logits of a float graph against PyTorch (measured: 1.3e-5)


def need(*modules: str) -> None:
    for module in modules:
        pytest.importorskip(module, reason=f"needs {module}: pip install 'mobilenet[onnx]' / 'mobilenet[openvino]'")


@pytest.fixture(scope="module")
def google() -> SSD:
    return load_detector(shared_path(GOOGLE)).eval()


@pytest.fixture(scope="module")
def coco() -> DetectionSet:
    dataset = coco_detection(shared_path(f"{COCO128}/instances_val2017_from_yolo.json"))
    return DetectionSet(dataset.records[:IMAGES], dataset.classes, dataset.report)


@pytest.fixture(scope="module")
def batch(google: SSD, coco: DetectionSet) -> torch.Tensor:
    pre = google.preprocessing
    return torch.stack([to_tensor(resize_to_input(as_rgb_image(r.image), pre), pre) for r in coco.records])


@pytest.fixture(scope="module")
def eager(google: SSD, coco: DetectionSet, batch: torch.Tensor):
    """PyTorch's raw outputs, detections (in pixels, at ``SCORE``) and COCO scores on the images."""
    sizes = [(r.width, r.height) for r in coco.records]
    with torch.no_grad():
        raw = google(batch)
    found = run_detector(google, batch, sizes, SCORE)
    assert all(len(labels) > 0 for _, _, labels in found)  # every image has detections to compare
    return raw, found, score(google, coco)


def score(detector, coco: DetectionSet) -> float:
    class_map = class_map_by_name(object_names(detector), coco.classes)
    return evaluate_detector(detector, coco.records, coco.classes, class_map=class_map).map


def assert_same_detections(found, expected) -> None:
    for (boxes, scores, labels), (their_boxes, their_scores, their_labels) in zip(found, expected, strict=True):
        assert torch.equal(labels, their_labels)
        torch.testing.assert_close(boxes, their_boxes, atol=1e-2, rtol=0)  # pixels
        torch.testing.assert_close(scores, their_scores, atol=1e-4, rtol=0)


def test_cli_export_gives_pytorchs_raw_outputs_anchors_and_detections(tmp_path, capsys, google, coco, batch, eager):
    need("onnxruntime", "onnxscript")
    import onnx
    import onnxruntime as ort

    out = tmp_path / "detector.onnx"
    assert main(["export", str(shared_path(GOOGLE)), str(out), "--images", str(coco.records[0].image), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["max_abs_diff"] < RAW_TOLERANCE and report["verified_on"].startswith("1 images")
    metadata = {p.key: p.value for p in onnx.load(out).metadata_props}
    assert metadata["mobilenet.kind"] == "ssd" and json.loads(metadata["mobilenet.config"])["nms"] == "fast"
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    shapes = {o.name: o.shape for o in session.get_outputs()}
    assert shapes == {"box_codes": ["batch", 1917, 4], "class_logits": ["batch", 1917, 91], "anchors": [1917, 4]}
    codes, logits, anchors = (torch.from_numpy(o) for o in session.run(None, {"images": batch.numpy()}))
    (expected_codes, expected_logits), expected, _ = eager
    assert torch.equal(anchors, google.anchors(300, 300))  # exact: a constant of the file
    assert (codes - expected_codes).abs().max() < RAW_TOLERANCE
    assert (logits - expected_logits).abs().max() < RAW_TOLERANCE
    # The file alone (its outputs, its anchors, its config) post-processed as the library does: PyTorch's detections.
    config = google.config
    found = postprocess(codes, logits, anchors, SCORE, config.iou_threshold, config.max_detections,
                        config.max_per_class, config.box_coder_scales, config.nms)  # fmt: skip
    sizes = [torch.tensor([r.width, r.height] * 2, dtype=torch.float32) for r in coco.records]
    clipped = [(clip_boxes(b) * s, c, label) for (b, c, label), s in zip(found, sizes, strict=True)]  # as detect's
    assert_same_detections(clipped, expected)


def test_argmax_is_refused_for_a_detector(tmp_path) -> None:
    with pytest.raises(ValueError, match="a detector's outputs are box codes and logits; leave out argmax") as error:
        export_onnx(SSD(arch="mobilenet_v1", width_mult=0.25, input_size=96), tmp_path / "x.onnx", argmax=True)
    assert "\n" not in str(error.value) and not list(tmp_path.iterdir())


# OpenVINO's graph is the same ONNX export as ONNX Runtime's, converted (tests/inference/test_deploy.py covers that
# step): one more export of seconds, left to benchmarks/detection_int8.py, which scores both runtimes.
@pytest.mark.parametrize("backend", ["eager", "torch", "onnxruntime"])
def test_deployed_detector_gives_pytorchs_detections_and_scores(backend, google, coco, batch, eager) -> None:
    need(*{"onnxruntime": ["onnxruntime", "onnxscript"], "openvino": ["openvino", "onnxscript"]}.get(backend, []))
    deployed = deploy(google, backend, threads=1)
    assert isinstance(deployed, DeployedDetector) and deployed.kind == "ssd" and deployed.config == google.config
    (expected_codes, expected_logits), expected, expected_map = eager
    codes, logits = deployed(batch)
    assert (codes - expected_codes).abs().max() < RAW_TOLERANCE
    assert (logits - expected_logits).abs().max() < RAW_TOLERANCE
    assert_same_detections(run_detector(deployed, batch, [(r.width, r.height) for r in coco.records], SCORE), expected)
    assert score(deployed, coco) == pytest.approx(expected_map, abs=1e-4)
    with pytest.raises(ValueError, match="deployed at 300x300, not 320x320"):
        deployed.anchors(320, 320)


def test_optimized_detector_stands_in_for_the_model(google, coco, batch, eager) -> None:
    found = run_detector(optimize(google), batch, [(r.width, r.height) for r in coco.records], SCORE)
    assert_same_detections(found, eager[1])


@pytest.mark.slow
def test_int8_deploy_detects_on_real_images(google, coco, batch, eager) -> None:
    """Calibrated on COCO128 train images, run on val ones: outputs that post-process and score; no accuracy claim
    beyond logits that still follow the float model's (Google's weights were trained for 8 bits)."""
    need("onnxruntime", "onnxscript")
    pre = google.preprocessing
    train = sorted(shared_path(f"{COCO128}/images/train2017").glob("*.jpg"))[:8]
    calibration = torch.stack([to_tensor(resize_to_input(as_rgb_image(file), pre), pre) for file in train])
    deployed = deploy(google, "onnxruntime", "int8", calibration, threads=1)
    assert deployed.precision == "int8" and deployed.size_bytes < 0.35 * weight_bytes(google)  # measured 0.27
    codes, logits = deployed(batch)
    assert codes.shape == eager[0][0].shape and logits.shape == eager[0][1].shape
    assert torch.isfinite(codes).all() and torch.isfinite(logits).all()
    assert np.corrcoef(logits.flatten(), eager[0][1].flatten())[0, 1] > 0.95  # measured 0.998
    assert 0 <= score(deployed, coco) <= 1


def test_bench_times_a_detector_against_ours_eager() -> None:
    model = SSD(arch="mobilenet_v1", width_mult=0.25, input_size=96, num_classes=4)
    result = bench_model(model, threads=1, batch=2, rounds=1, calls=1, precisions=())
    assert result.kind == "ssd" and result.resolution == 96 and result.madds > 1e6
    assert [p.name for p in result.paths] == ["ours eager (NCHW)", "optimize (folded, channels-last)"]
    assert any("torchvision and timm have no ssd" in note for note in result.notes)
    assert all(p.b1_ms > 0 and p.throughput > 0 for p in result.paths)


def test_bench_times_googles_file_in_litert() -> None:
    pytest.importorskip("ai_edge_litert", reason="needs Google's runtime: pip install ai-edge-litert")
    path = shared_path(GOOGLE)
    (result,) = bench("ssdlite_mobilenet_v2", weights=path, reference="litert", threads=1, batch=1, rounds=1, calls=1,
                      precisions=())  # fmt: skip
    assert (result.kind, result.arch, result.width_mult, result.resolution) == ("ssd", "mobilenet_v1", 0.75, 300)
    assert result.paths[0].name == f"LiteRT {path.name}" and result.paths[0].size_mb == path.stat().st_size / 1e6
    assert any("LiteRT also runs the file's post-processing op (its NMS)" in note for note in result.notes)
