"""A new label set's last layer, started from the start's rows (``mobilenet.weights.relabel``): checked on each kind's
outputs, the old model's against the new one's on the same images, not on the weights the code wrote."""

from __future__ import annotations

import math

import pytest
import torch

from mobilenet.detection.model import SSD
from mobilenet.nn.model import MobileNet
from mobilenet.segmentation.model import DeepLabV3
from mobilenet.training.config import TrainConfig
from mobilenet.weights.relabel import NewLabels, relabel

START = ["background", "car", "bus", "cat", "dog"]
# Classes kept by name and merged, in another order than the start's: every class has a start.
LABELS = NewLabels(["background", "pet", "vehicle", "bus"], {"pet": ["cat", "dog"], "vehicle": ["car", "bus"]})


KINDS = {  # small models of each kind, 5 classes
    "classifier": lambda: MobileNet(width_mult=0.35, num_classes=5),
    "classifier, conv": lambda: MobileNet(width_mult=0.35, num_classes=5, classifier="conv"),
    "deeplab": lambda: DeepLabV3(width_mult=0.35, num_classes=5),
    "ssdlite": lambda: SSD(width_mult=0.35, num_classes=5, input_size=64),
}


def outputs(model: torch.nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Each class's logits, classes last ([N, classes], [N, H, W, classes] or [N, anchors, classes]), and an SSD's
    box codes."""
    with torch.no_grad():
        out = model(images)
    if isinstance(model, SSD):
        return out[1], out[0]
    return (out.movedim(1, -1) if out.dim() == 4 else out), None


@pytest.mark.parametrize("kind", list(KINDS))
def test_kept_rows_score_as_before_and_merged_ones_as_their_mean_plus_log_count(kind) -> None:
    torch.manual_seed(0)
    model = KINDS[kind]().eval()  # an eval model's new last layer is in eval mode too
    with torch.no_grad():  # the start's class rows differ from each other, as trained ones do
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    model.class_names = list(START)
    images = torch.rand(2, 3, 64, 64)
    before, boxes = outputs(model, images)

    rows = {"background": ["background"], "pet": ["cat", "dog"], "vehicle": ["car", "bus"], "bus": ["bus"]}
    assert relabel(model, LABELS) == rows
    after, boxes_after = outputs(model, images)
    assert after.shape == (*before.shape[:-1], 4) and model.num_classes == 4
    torch.testing.assert_close(after[..., 0], before[..., 0])
    torch.testing.assert_close(after[..., 1], (before[..., 3] + before[..., 4]) / 2 + math.log(2))
    torch.testing.assert_close(after[..., 2], (before[..., 1] + before[..., 2]) / 2 + math.log(2))
    torch.testing.assert_close(after[..., 3], before[..., 2])
    if boxes is not None:  # an SSD's box codes are no class's: they stay as they were
        assert torch.equal(boxes_after, boxes)


def test_a_start_for_some_classes_only_is_not_made() -> None:
    """Rows kept for some classes and new for others trained worse than a layer all new: all new, then."""
    model = DeepLabV3(width_mult=0.35, num_classes=5)
    model.class_names = list(START)
    assert relabel(model, NewLabels(["background", "bus", "tree"])) == {"background": [], "bus": [], "tree": []}
    assert torch.all(model.logits.bias == 0)  # initialised, as a new layer is
    without_names = NewLabels(["pet", "rest"], {"pet": ["cat", "dog"], "rest": ["background", "car", "bus"]}, False)
    assert without_names.rows_from(START) == [(3, 4), (0, 1, 2)]
    with pytest.raises(ValueError, match=r"^--merge-classes leaves tree without a start in --weights, and a last layer "
                       r"started for only some classes trains worse than a new one: give each class a start "
                       r"\(NAME=NAME keeps one\), or drop --merge-classes$"):  # fmt: skip
        NewLabels(["background", "pet", "tree"], {"pet": ["cat", "dog"]}).rows_from(START)


@pytest.mark.parametrize(
    ("labels", "start", "says"),
    [
        (NewLabels(["background", "pet"], {"pets": ["cat"]}), START,
         r"^--merge-classes names pets, not among the data's classes \(background, pet\): merge into those$"),
        (NewLabels(["background", "pet"], {"pet": ["cat", "horse", "cow"]}), START,
         r"^--merge-classes takes cow, horse from the start, which has no class of that name \(or several\): name its "
         r"classes as it does \(background, car, bus, cat, dog\)$"),
        (NewLabels(["background", "pet"], {"pet": ["cat"]}), None,
         r"^--merge-classes needs the start's class names, and its weights carry none: drop it$"),
    ],
)  # fmt: skip
def test_a_merge_that_cannot_be_made_is_refused_in_one_line(labels, start, says) -> None:
    with pytest.raises(ValueError, match=says):
        labels.rows_from(start)


def test_merge_classes_is_read_and_a_malformed_one_refused_with_the_config() -> None:
    config = TrainConfig(weights="voc.tflite", merge_classes="vehicle = car+bus; pet=cat")
    assert config.class_merges() == {"vehicle": ("car", "bus"), "pet": ("cat",)}
    assert TrainConfig().class_merges() == {}
    for wrong in ("vehicle", "vehicle=", "vehicle=car+", "=car", "pet=cat;pet=dog", "pet=cat;"):
        with pytest.raises(ValueError, match=r"^--merge-classes takes NEW=OLD\+OLD;\.\.\. with each new class once"):
            TrainConfig(weights="voc.tflite", merge_classes=wrong)
    with pytest.raises(ValueError, match=r"^--merge-classes needs --weights, whose classes it merges$"):
        TrainConfig(merge_classes="pet=cat")


def test_a_class_is_found_by_imagenet_s_synonyms_where_only_one_class_has_it() -> None:
    start = ["tench, Tinca tinca", "crane", "crane, derrick", "goldfish, Carassius auratus"]
    labels = NewLabels(["tench", "crane", "derrick", "fish"], {"fish": ["tench", "goldfish"]})
    assert labels.rows_from(start) == [(0,), (1,), (2,), (0, 3)]
    with pytest.raises(ValueError, match=r"^--merge-classes takes crane, derrick from the start, which has no class"):
        NewLabels(["bird"], {"bird": ["crane", "derrick"]}).rows_from(["crane, bird", "crane, machine"])  # 2, none
