"""Google's quantized COCO SSD (TF Lite's ``detect.tflite``) imported into our SSD and checked against LiteRT."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from mobilenet.data.images import as_rgb_image, to_tensor
from mobilenet.detection.anchors import grid_sizes, ssd_anchors
from mobilenet.detection.boxes import box_iou
from mobilenet.detection.litert import LiteRTDetector, LiteRTOutputs
from mobilenet.detection.model import SSD
from mobilenet.detection.postprocess import fast_nms
from mobilenet.detection.predict import resize_to_input
from mobilenet.detection.tflite import check_anchors, import_ssd_tflite, is_ssd_tflite, read_ssd_tflite
from tests.helpers.data import shared_path

pytestmark = pytest.mark.shared

SSD_FILE = "weights/ssd_mobilenet_v1_075_coco_quant.tflite"
IMAGES = 6  # the first COCO128 val images
CONFIDENT = 0.5  # LiteRT's detections checked one by one: those at least this sure


@pytest.fixture(scope="module")
def path() -> Path:
    return shared_path(SSD_FILE)


@pytest.fixture(scope="module")
def models(path: Path) -> dict[bool, SSD]:
    """The float import and the one rounding activations to the file's grids, by ``emulate_int8``."""
    return {emulate: import_ssd_tflite(path, emulate_int8=emulate).eval() for emulate in (False, True)}


@pytest.fixture(scope="module")
def batch(models: dict[bool, SSD]) -> torch.Tensor:
    files = sorted(shared_path("detection/coco128/images/val2017").glob("*.jpg"))[:IMAGES]
    pre = models[False].preprocessing
    return torch.stack([to_tensor(resize_to_input(as_rgb_image(file), pre), pre) for file in files])


@pytest.fixture(scope="module")
def litert(path: Path, batch: torch.Tensor) -> LiteRTOutputs:
    return LiteRTDetector(path)(batch)


@pytest.fixture(scope="module")
def outputs(models: dict[bool, SSD], batch: torch.Tensor) -> dict[bool, tuple[torch.Tensor, torch.Tensor]]:
    with torch.no_grad():
        return {emulate: model(batch) for emulate, model in models.items()}


def test_the_file_is_a_075_mobilenet_v1_ssd_with_its_op_options(path: Path, models: dict[bool, SSD]) -> None:
    config = models[False].config
    architecture = (config.arch, config.width_mult, config.separable, config.predictor_kernel)
    assert architecture == ("mobilenet_v1", 0.75, False, 1)
    assert (config.input_size, config.num_classes, config.padding) == (300, 91, "tf_same")
    # The op's flexbuffer options, as TF's export writes them for ssd_mobilenet_v1_coco.
    assert config.box_coder_scales == (10.0, 10.0, 5.0, 5.0)
    assert (config.iou_threshold, config.score_threshold, config.max_detections) == (0.6, 1e-8, 10)
    options = read_ssd_tflite(path).options
    assert options["max_classes_per_detection"] == 1 and not options.get("use_regular_nms", False)
    names = models[False].class_names
    assert len(names) == 91 and names[:3] == ["background", "person", "bicycle"] and names[12] == "???"
    lines = path.with_name(f"{path.stem}_labels.txt").read_text().splitlines()
    assert names[1:] == lines[1:]  # column i is the labels file's line i
    # uint8 pixels of scale 1/128 and zero point 128: (p - 128) / 128.
    assert models[False].preprocessing.mean[0] == pytest.approx(128 / 255)
    assert models[False].preprocessing.std[0] == pytest.approx(128 / 255)


def test_our_anchors_are_the_files(path: Path, models: dict[bool, SSD]) -> None:
    found, config = read_ssd_tflite(path), models[False].config
    ours = ssd_anchors(config, grid_sizes(config, 300, 300))
    assert ours.shape == (1917, 4)
    # The file stores them as uint8: equal within half its step.
    assert (ours - torch.from_numpy(found.anchors)).abs().max() <= found.anchor_step / 2 + 1e-6
    with pytest.raises(ValueError, match="anchors differ from ours"):
        check_anchors(replace(config, min_scale=0.15), found, path)


def test_raw_outputs_agree_with_litert(outputs, litert: LiteRTOutputs) -> None:
    """The op's inputs (dequantized) against ours. Float: LiteRT's integer arithmetic and its clamping to each
    tensor's range (codes 0.079 a step, logits 0.050) differ a little everywhere and a lot at a few clamped
    values (measured on COCO128 val: codes mean 0.038, logits 0.028, scores max 0.11). Emulated: most values
    land on the same step, the rest within a few (measured: codes max 0.40, logits max 0.15)."""
    (codes, logits), (emulated_codes, emulated_logits) = outputs[False], outputs[True]
    assert (codes - litert.box_codes).abs().mean() < 0.06
    assert (logits - litert.class_logits).abs().mean() < 0.05
    assert (torch.sigmoid(logits) - litert.class_scores).abs().max() < 0.15
    assert (emulated_codes - litert.box_codes).abs().max() < 6 * 0.079
    assert (emulated_logits - litert.class_logits).abs().max() < 4 * 0.050
    assert (torch.sigmoid(emulated_logits) - litert.class_scores).abs().max() < 0.03
    same_step = (emulated_codes - litert.box_codes).abs() < 1e-4
    assert same_step.float().mean() > 0.75  # measured 0.82


def test_fast_nms_is_the_files_op(path: Path, litert: LiteRTOutputs) -> None:
    """Given exactly what the op reads (its scores, its uint8 anchors), fast_nms gives exactly its detections."""
    anchors = torch.from_numpy(read_ssd_tflite(path).anchors)
    scores_as_logits = torch.logit(litert.class_scores.double()).float()
    ours = fast_nms(litert.box_codes, scores_as_logits, anchors, 1e-8, 0.6, 10)
    for (boxes, scores, labels), (their_boxes, their_scores, their_labels) in zip(
        ours, litert.detections(), strict=True
    ):
        assert torch.equal(labels, their_labels)
        torch.testing.assert_close(boxes, their_boxes, atol=1e-5, rtol=0)
        torch.testing.assert_close(scores, their_scores, atol=1e-6, rtol=0)


def test_detections_agree_with_litert(path: Path, models: dict[bool, SSD], outputs, litert: LiteRTOutputs) -> None:
    """The emulated import, post-processed as the op does against the file's anchors: every image's best
    detection is LiteRT's (class, IoU > 0.9), and so are nearly all of its confident ones (measured 97%)."""
    config = models[True].config
    anchors = torch.from_numpy(read_ssd_tflite(path).anchors)
    ours = fast_nms(*outputs[True], anchors, config.score_threshold, config.iou_threshold, config.max_detections)
    matched = checked = 0
    for (boxes, _, labels), (their_boxes, their_scores, their_labels) in zip(ours, litert.detections(), strict=True):
        assert labels[0] == their_labels[0] and box_iou(boxes[:1], their_boxes[:1]).item() > 0.9
        for box, score, label in zip(their_boxes, their_scores, their_labels, strict=True):
            if score >= CONFIDENT:
                checked += 1
                same = labels == label
                matched += bool(same.any()) and box_iou(box[None], boxes[same]).max().item() > 0.9
    assert checked >= 10 and matched >= 0.9 * checked


def test_a_classifier_is_not_a_detector(path: Path, tmp_path: Path) -> None:
    classifier = shared_path("weights/mobilenet_v1_0.25_128_quant.tflite")
    assert is_ssd_tflite(path) and not is_ssd_tflite(classifier)
    with pytest.raises(ValueError, match="not an SSD detector") as error:
        import_ssd_tflite(classifier)
    assert "\n" not in str(error.value)
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(path.read_bytes()[:3])
    with pytest.raises(ValueError, match="is not a TFLite file"):
        is_ssd_tflite(truncated)
