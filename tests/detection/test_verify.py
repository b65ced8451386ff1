"""`mobilenet verify` on an SSD file: Google's COCO SSD beside LiteRT running it with its own post-processing op,
agreement counted over detections on real COCO images, and a wrong padding named."""

from __future__ import annotations

import pytest
import torch

from mobilenet.detection.verify import agreement
from mobilenet.registry import verify
from tests.helpers.data import shared_path

SSD = "weights/ssd_mobilenet_v1_075_coco_quant.tflite"


def test_agreement_pairs_detections_of_one_class_once() -> None:
    box = torch.tensor([[0.1, 0.1, 0.5, 0.5]])
    shifted = torch.tensor([[0.12, 0.1, 0.5, 0.52]])
    one = [(box, torch.ones(1), torch.tensor([3]))]
    assert agreement(one, one) == (1.0, 0.0)
    assert agreement(one, [(shifted, torch.ones(1), torch.tensor([3]))]) == (1.0, pytest.approx(0.02))
    assert agreement(one, [(shifted, torch.ones(1), torch.tensor([4]))]) == (0.0, None)  # another class
    two = [(torch.cat([box, box]), torch.ones(2), torch.tensor([3, 3]))]
    assert agreement(two, one)[0] == pytest.approx(2 / 3)  # a box paired once: one of three is left alone
    nothing = [(box[:0], torch.ones(0), torch.zeros(0, dtype=torch.long))]
    assert agreement(nothing, nothing) == (1.0, None)  # nothing on either side: they agree


@pytest.mark.shared
def test_google_ssd_agrees_with_litert_and_a_wrong_padding_is_named() -> None:
    pytest.importorskip("ai_edge_litert", reason="LiteRT is a test-only reference: pip install ai-edge-litert")
    images = sorted(shared_path("detection/coco128/images/val2017").glob("*.jpg"))[:12]
    found = verify(shared_path(SSD), images)
    read = (found.format, found.measure, found.arch, found.width_mult, found.padding, found.images)
    assert read == ("tflite", "detections", "mobilenet_v1", 0.75, "tf_same", 12) and found.reference.startswith(
        "LiteRT"
    )
    assert found.agreement >= 0.85 and found.wrong_conventions == []  # float import against 8-bit: 94% on all 128
    lines = dict(zip([c.name for c in found.conventions], found.lines(), strict=True))
    assert lines["padding"].startswith("padding tf_same matters: symmetric would lose")
    wrong = verify(shared_path(SSD), images, padding="symmetric")
    assert [c.name for c in wrong.wrong_conventions] == ["padding"] and wrong.verdict.endswith(
        "this file needs tf_same"
    )
    assert found.caveat is None  # real images given
    assert "built-in images hold no objects" in verify(shared_path(SSD)).caveat
