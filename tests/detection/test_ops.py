"""SSD's numerical core (boxes, coder, matcher, loss, postprocess) against independent references.

The references are brute-force pure-Python loops written from TF's rules, hand-computed values of TF's box coder,
and torchvision.ops where it runs here. On this CPU-only torch, torchvision's compiled operator library does not
load, so ``torchvision.ops.nms`` and ``torchvision.ops.batched_nms`` (both of its paths: the coordinate trick and
the per-class loop call ``nms``) raise ``RuntimeError: Couldn't load custom C++ ops`` from ``_assert_has_ops``, and
calling ``torch.ops.torchvision.nms`` directly raises ``NotImplementedError: Could not run 'torchvision::nms' with
arguments from the 'CPU' backend`` (the shim defines only its schema). The NMS comparison with torchvision
therefore skips here, saying so, and runs wherever torchvision's kernels load; ``box_iou`` and ``box_convert`` are
pure Python and are compared everywhere.
"""

from __future__ import annotations

import math
import random

import pytest
import torch

from mobilenet.detection.boxes import (
    anchor_boxes,
    batched_nms,
    box_area,
    box_iou,
    clip_boxes,
    first_block,
    iter_nms_kept,
    ranked_blocks,
)
from mobilenet.detection.coder import BOX_CODER_SCALES, decode, encode
from mobilenet.detection.loss import LOSS_STATS, mine_hard_examples, ssd_loss
from mobilenet.detection.matcher import match, targets
from mobilenet.detection.postprocess import postprocess

SEEDS = range(25)


def grid_boxes(rng: random.Random, count: int, steps: int = 8) -> list[list[float]]:
    """xyxy boxes on a coarse grid: identical boxes, zero-area boxes and tied IoUs come up often."""
    boxes = []
    for _ in range(count):
        x0, x1 = sorted(rng.randint(0, steps) / steps for _ in range(2))
        y0, y1 = sorted(rng.randint(0, steps) / steps for _ in range(2))
        boxes.append([x0, y0, x1, y1])
    return boxes


def py_iou(a: list[float], b: list[float]) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    intersection = width * height
    if intersection <= 0:
        return 0.0
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - intersection
    return intersection / union


def py_nms(boxes: list, scores: list, classes: list, threshold: float, cap: int | None = None) -> list[int]:
    """Greedy NMS, one box at a time: TF's kernel (suppress at IoU > threshold, equal scores lower index first)."""
    kept: list[int] = []
    for i in sorted(range(len(boxes)), key=lambda i: (-scores[i], i)):
        if cap is not None and sum(classes[k] == classes[i] for k in kept) >= cap:
            continue
        if all(classes[k] != classes[i] or py_iou(boxes[k], boxes[i]) <= threshold for k in kept):
            kept.append(i)
    return kept


def py_anchor_corners(anchor: list[float]) -> list[float]:
    cy, cx, h, w = anchor
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


# --- boxes ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_box_iou_matches_brute_force(seed):
    rng = random.Random(seed)
    a, b = grid_boxes(rng, 17), grid_boxes(rng, 11)
    expected = torch.tensor([[py_iou(x, y) for y in b] for x in a], dtype=torch.float64)
    got = box_iou(torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64))
    assert torch.equal(got, expected)


def test_box_helpers():
    anchors = torch.tensor([[0.5, 0.25, 0.2, 0.4]])  # cy, cx, h, w
    assert torch.allclose(anchor_boxes(anchors), torch.tensor([[0.05, 0.4, 0.45, 0.6]]))
    assert box_area(torch.tensor([[0.0, 0.0, 0.5, 0.2], [0.3, 0.3, 0.3, 0.9]])).tolist() == pytest.approx([0.1, 0.0])
    clipped = clip_boxes(torch.tensor([[-0.5, 0.2, 1.5, 2.0]]))
    assert torch.equal(clipped, torch.tensor([[0.0, 0.2, 1.0, 1.0]]))
    with pytest.raises(ValueError, match="last dimension of 4"):
        box_iou(torch.zeros(3, 3), torch.zeros(2, 4))


@pytest.mark.parametrize("seed", SEEDS)
def test_batched_nms_matches_brute_force(seed):
    rng = random.Random(seed)
    count = rng.randint(0, 120)
    boxes = grid_boxes(rng, count, steps=6)
    scores = [rng.choice([0.1, 0.3, 0.5, 0.7, 0.9]) for _ in range(count)]  # many ties
    classes = [rng.randint(0, 2) for _ in range(count)]
    threshold = rng.choice([0.3, 0.5, 0.7])
    expected = py_nms(boxes, scores, classes, threshold)
    args = (torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4), torch.tensor(scores, dtype=torch.float64))
    got = batched_nms(*args, torch.tensor(classes, dtype=torch.long), threshold)
    assert got.tolist() == expected


def test_nms_identical_and_zero_area_boxes():
    boxes = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1], [0.5, 0.5, 0.5, 0.9], [0.5, 0.5, 0.5, 0.9]])
    scores = torch.tensor([0.5, 0.9, 0.9, 0.8, 0.8])
    # Identical boxes, equal scores: the first wins; the same box in another class survives; zero area overlaps nothing.
    assert batched_nms(boxes, scores, torch.zeros(5, dtype=torch.long), 0.5).tolist() == [1, 3, 4]
    assert batched_nms(boxes, scores, torch.tensor([0, 0, 1, 0, 0]), 0.5).tolist() == [1, 2, 3, 4]
    assert batched_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long), 0.5).tolist() == []


def test_nms_chunks_agree_with_one_pass():
    """The chunked scan (boxes checked against earlier chunks' kept boxes) equals greedy NMS in one pass."""
    rng = random.Random(7)
    boxes = torch.tensor(grid_boxes(rng, 300, steps=5), dtype=torch.float64)
    classes = torch.tensor([rng.randint(0, 1) for _ in range(300)])
    expected = py_nms(boxes.tolist(), [0.0] * 300, classes.tolist(), 0.4)  # equal scores: input order
    assert torch.cat(list(iter_nms_kept(boxes, classes, 0.4, chunk_size=16))).tolist() == expected


def test_ranked_blocks_are_a_stable_sort_taken_a_block_at_a_time():
    """The top pairs by score, a block at a time, in exactly the order of one stable sort of all of them (class-major
    index on ties), whatever the block size, ties at a block's edge included."""
    scores = (torch.rand(300, 7, generator=torch.Generator().manual_seed(0)) * 20).round() / 20  # many equal scores
    candidates = scores > 0.3
    flat = scores.t().reshape(-1)
    expected = candidates.t().reshape(-1).nonzero().flatten()
    expected = expected[torch.sort(flat[expected], descending=True, stable=True).indices]
    for first in (1, 5, 64, 4096):
        blocks = list(ranked_blocks(scores, candidates, first))
        assert torch.equal(torch.cat(blocks), expected) and len(blocks[0]) >= min(first, len(expected))
    assert list(ranked_blocks(scores, torch.zeros_like(candidates))) == []
    # The first block by the detections wanted: 64 for TF Lite's 10, 256 for 100 (the fastest measured for each).
    assert [first_block(wanted) for wanted in (1, 10, 40, 100, 300)] == [64, 64, 160, 256, 256]


# --- torchvision --------------------------------------------------------------------------------------------


@pytest.mark.reference
def test_box_iou_and_anchor_boxes_match_torchvision():
    from benchmarks.references import import_torchvision

    ops = import_torchvision().ops
    generator = torch.Generator().manual_seed(0)
    corners = torch.rand(50, 2, 2, generator=generator).sort(dim=1).values  # positive areas: torchvision's 0/0 is NaN
    boxes = corners.permute(0, 2, 1).reshape(50, 4)[:, [0, 2, 1, 3]]
    assert torch.allclose(box_iou(boxes, boxes[:20]), ops.box_iou(boxes, boxes[:20]), atol=1e-6)
    anchors = torch.rand(30, 4, generator=generator)  # cy, cx, h, w
    expected = ops.box_convert(anchors[:, [1, 0, 3, 2]], in_fmt="cxcywh", out_fmt="xyxy")
    assert torch.allclose(anchor_boxes(anchors), expected, atol=1e-7)


@pytest.mark.reference
def test_batched_nms_matches_torchvision():
    from benchmarks.references import import_torchvision

    ops = import_torchvision().ops
    generator = torch.Generator().manual_seed(1)
    xy = torch.rand(400, 2, generator=generator)
    boxes = torch.cat([xy, xy + 0.05 + 0.3 * torch.rand(400, 2, generator=generator)], dim=1)
    scores = torch.rand(400, generator=generator)
    classes = torch.randint(0, 4, (400,), generator=generator)
    try:
        expected = ops.batched_nms(boxes, scores, classes, 0.5)
    except (RuntimeError, NotImplementedError) as error:
        pytest.skip(f"torchvision's nms kernel does not run on this torch: {str(error).split('.')[0]}")
    assert batched_nms(boxes, scores, classes, 0.5).tolist() == expected.tolist()


# --- coder --------------------------------------------------------------------------------------------------


def test_encode_matches_tf_formula_by_hand():
    anchors = torch.tensor([[0.5, 0.5, 0.2, 0.4], [0.5, 0.5, 0.2, 0.4], [0.3, 0.6, 0.1, 0.1]], dtype=torch.float64)
    boxes = torch.tensor([[0.3, 0.45, 0.7, 0.65], [0.4, 0.3, 0.6, 0.7], [0.6, 0.3, 0.6, 0.3]], dtype=torch.float64)
    eps = 1e-8
    assert BOX_CODER_SCALES == (10.0, 10.0, 5.0, 5.0)
    expected = [
        [10 * 0.05 / (0.2 + eps), 0.0, 0.0, 0.0],  # same size, moved down by a quarter of the anchor's height
        [0.0, 0.0, 5 * math.log((0.4 + eps) / (0.2 + eps)), 5 * math.log((0.2 + eps) / (0.4 + eps))],
        [0.0, 0.0, 5 * math.log(eps / (0.1 + eps)), 5 * math.log(eps / (0.1 + eps))],  # zero size: TF's epsilon
    ]
    assert torch.allclose(encode(boxes, anchors), torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-9)
    plain = encode(boxes[:2], anchors[:2], scales=(1.0, 1.0, 1.0, 1.0))
    expected_plain = torch.tensor(
        [[0.05 / (0.2 + eps), 0, 0, 0], [0, 0, math.log(2), -math.log(2)]], dtype=torch.float64
    )
    assert torch.allclose(plain, expected_plain, rtol=0, atol=1e-7)


def test_encode_decode_round_trip():
    generator = torch.Generator().manual_seed(2)
    anchors = torch.cat([torch.rand(64, 2, generator=generator), 0.05 + torch.rand(64, 2, generator=generator)], 1)
    codes = torch.randn(3, 64, 4, generator=generator, dtype=torch.float64)
    boxes = decode(codes, anchors.double())
    assert torch.allclose(encode(boxes, anchors.double()), codes, atol=1e-6)  # epsilon's effect: ~1e-7
    scales = (8.0, 8.0, 4.0, 4.0)
    assert torch.allclose(decode(encode(boxes, anchors.double(), scales), anchors.double(), scales), boxes, atol=1e-9)
    assert torch.isfinite(decode(torch.tensor([[0.0, 0.0, 1e4, 1e4]]), anchors[:1])).all()  # TF's clamp at 80
    with pytest.raises(ValueError, match="4 positive numbers"):
        encode(boxes, anchors.double(), scales=(10.0, 10.0, 5.0))


# --- matcher ------------------------------------------------------------------------------------------------


def py_match(gt: list, anchors: list, threshold: float = 0.5) -> list[int]:
    """TF's ArgMaxMatcher, force_match_for_each_row, written out loop by loop."""
    if not gt:
        return [-1] * len(anchors)
    corners = [py_anchor_corners(a) for a in anchors]
    iou = [[py_iou(g, c) for c in corners] for g in gt]
    matches = []
    for a in range(len(anchors)):
        column = [iou[g][a] for g in range(len(gt))]
        best = max(column)
        matches.append(column.index(best) if best >= threshold else -1)
    claimed: dict[int, int] = {}
    for g, row in enumerate(iou):
        claimed.setdefault(row.index(max(row)), g)  # several claims on one anchor: the first gt keeps it
    for a, g in claimed.items():
        matches[a] = g
    return matches


@pytest.mark.parametrize("seed", SEEDS)
def test_match_matches_brute_force(seed):
    rng = random.Random(seed)
    sizes = (0.25, 0.5)  # (cy, cx, h, w) on a grid: tied IoUs between anchors
    anchors = [[rng.randint(1, 7) / 8, rng.randint(1, 7) / 8, rng.choice(sizes), rng.choice(sizes)] for _ in range(40)]
    gt = [box for box in grid_boxes(rng, rng.randint(0, 6)) if box[2] > box[0] and box[3] > box[1]]
    got = match(torch.tensor(gt, dtype=torch.float64).reshape(-1, 4), torch.tensor(anchors, dtype=torch.float64))
    assert got.tolist() == py_match(gt, anchors)


def test_match_forced_rules_pinned():
    anchors = torch.tensor([[0.5, 0.5, 0.2, 0.2], [0.5, 0.55, 0.2, 0.2], [0.1, 0.1, 0.1, 0.1], [0.9, 0.9, 0.1, 0.1]])
    corners = anchor_boxes(anchors)
    big = corners[1].tolist()  # gt 0: anchor 1 exactly, anchor 0 at IoU 0.6
    small = [0.42, 0.42, 0.48, 0.48]  # gt 1: inside anchor 0 only, IoU 0.09: its forced claim steals anchor 0
    assert match(torch.tensor([big, small]), anchors).tolist() == [1, 0, -1, -1]
    # Two gt boxes whose best anchor is anchor 2, both below 0.5: the lower index gets it, the other nothing.
    near_2a, near_2b = [0.0, 0.0, 0.1, 0.06], [0.06, 0.0, 0.16, 0.1]
    assert match(torch.tensor([near_2a, near_2b]), anchors).tolist() == [-1, -1, 0, -1]
    assert match(torch.tensor([near_2b, near_2a]), anchors).tolist() == [-1, -1, 0, -1]
    assert match(torch.zeros(0, 4), anchors).tolist() == [-1, -1, -1, -1]
    assert match(torch.tensor([[0.3, 0.95, 0.35, 0.99]]), anchors).tolist() == [0, -1, -1, -1]  # overlaps nothing


def test_targets():
    anchors = torch.tensor([[0.5, 0.5, 0.2, 0.2], [0.2, 0.2, 0.2, 0.2], [0.8, 0.8, 0.2, 0.2]])
    gt = torch.tensor([[0.12, 0.1, 0.3, 0.3], [0.7, 0.7, 0.9, 0.88]])
    box_targets, class_targets, positives = targets(gt, torch.tensor([4, 0]), anchors, num_classes=6)
    assert positives.tolist() == [False, True, True]
    assert class_targets.tolist() == [0, 5, 1]
    assert torch.equal(box_targets[0], torch.zeros(4))
    assert torch.allclose(box_targets[1:], encode(gt, anchors[1:]))
    empty = targets(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), anchors, num_classes=6)
    assert not empty[2].any() and not empty[1].any() and not empty[0].any()
    with pytest.raises(ValueError, match="num_classes=6 counts the background"):
        targets(gt, torch.tensor([5, 0]), anchors, num_classes=6)


# --- loss ---------------------------------------------------------------------------------------------------


def py_sigmoid_ce(logit: float, target: float) -> float:
    return max(logit, 0.0) - logit * target + math.log1p(math.exp(-abs(logit)))


def py_huber(x: float) -> float:
    return 0.5 * x * x if abs(x) <= 1 else abs(x) - 0.5


def random_batch(seed: int, n: int = 2, a: int = 40, c: int = 4, positives_per_image=(3, 0)):
    generator = torch.Generator().manual_seed(seed)
    positives = torch.zeros(n, a, dtype=torch.bool)
    for image, count in enumerate(positives_per_image):
        positives[image, torch.randperm(a, generator=generator)[:count]] = True
    class_targets = torch.where(positives, torch.randint(1, c, (n, a), generator=generator), 0)
    box_targets = torch.where(positives[..., None], torch.randn(n, a, 4, generator=generator), 0.0)
    box_codes = torch.randn(n, a, 4, generator=generator, dtype=torch.float64, requires_grad=True)
    class_logits = torch.randn(n, a, c, generator=generator, dtype=torch.float64, requires_grad=True)
    return box_codes, class_logits, box_targets.double(), class_targets, positives


@pytest.mark.parametrize("seed", range(5))
def test_ssd_loss_matches_brute_force(seed):
    box_codes, class_logits, box_targets, class_targets, positives = random_batch(seed)
    loss, stats = ssd_loss(box_codes, class_logits, box_targets, class_targets, positives)
    cls_total = loc_total = 0.0
    mined = 0
    for image in range(len(positives)):
        anchor_cls = [
            sum(py_sigmoid_ce(x, float(k == t)) for k, x in enumerate(row))
            for row, t in zip(class_logits[image].tolist(), class_targets[image].tolist(), strict=True)
        ]
        ranked = sorted(range(len(anchor_cls)), key=lambda i: (-anchor_cls[i], i))
        is_positive = positives[image].tolist()
        budget = max(3, 3 * sum(is_positive))  # ssdlite: min_negatives_per_image 3
        negatives = [i for i in ranked if not is_positive[i]][:budget]
        mined += len(negatives)
        cls_total += sum(anchor_cls[i] for i in negatives) + sum(anchor_cls[i] for i in range(40) if is_positive[i])
        for i in range(40):
            if is_positive[i]:
                codes, goal = box_codes[image, i].tolist(), box_targets[image, i].tolist()
                loc_total += sum(py_huber(p - g) for p, g in zip(codes, goal, strict=True))
    normalizer = max(1, int(positives.sum()))
    expected = [(cls_total + loc_total) / normalizer, cls_total / normalizer, loc_total / normalizer, 3, mined]
    assert LOSS_STATS == ("loss", "classification", "localization", "positives", "negatives")
    assert stats.tolist() == pytest.approx(expected, rel=1e-9)
    assert loss.item() == pytest.approx(expected[0], rel=1e-9)


def test_hard_negatives_three_per_positive():
    losses = torch.arange(60, dtype=torch.float64).flip(0).reshape(2, 30)  # anchor 0 hardest
    positives = torch.zeros(2, 30, dtype=torch.bool)
    positives[0, [5, 20]] = True
    selected = mine_hard_examples(losses, positives, min_negatives=0)
    assert (selected & ~positives).sum(dim=1).tolist() == [6, 0]
    assert selected[0].nonzero().flatten().tolist() == [0, 1, 2, 3, 4, 5, 6, 20]  # the 6 hardest negatives
    assert mine_hard_examples(losses, positives)[1].nonzero().flatten().tolist() == [0, 1, 2]  # min 3 negatives
    capped = mine_hard_examples(losses, positives, min_negatives=0, num_hard_examples=7)
    assert capped[0].nonzero().flatten().tolist() == [0, 1, 2, 5]  # positive 20 ranks past the 7 hardest: not counted


def test_miner_nms_drops_near_duplicate_predictions():
    anchors = torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.3, 0.3, 0.2, 0.2], [0.7, 0.7, 0.2, 0.2], [0.5, 0.5, 0.1, 0.1]])
    box_codes = torch.zeros(1, 4, 4)
    class_logits = torch.tensor([[[-2.0, 0.0], [-3.0, 0.0], [-1.0, 0.0], [0.0, 2.0]]])  # anchor 1: the hardest
    positives = torch.tensor([[False, False, False, True]])
    class_targets = positives.long()
    args = (box_codes, class_logits, torch.zeros(1, 4, 4), class_targets, positives)
    _, without = ssd_loss(*args)
    _, with_nms = ssd_loss(*args, anchors=anchors)
    assert without[4] == 3 and with_nms[4] == 2  # anchor 0 decodes onto anchor 1's box: suppressed
    assert with_nms[1] < without[1]


def test_loss_orders_predictions_and_normalizes_by_matches():
    _, _, box_targets, class_targets, positives = random_batch(3, positives_per_image=(4, 2))
    one_hot = torch.nn.functional.one_hot(class_targets, 4).double()
    perfect = ssd_loss(box_targets.clone(), 12 * (2 * one_hot - 1), box_targets, class_targets, positives)[0]
    wrong = ssd_loss(box_targets + 1, -12 * (2 * one_hot - 1), box_targets, class_targets, positives)[0]
    assert perfect < 1e-3 < 10 < wrong
    box_codes, class_logits, *_ = random_batch(4, positives_per_image=(4, 2))
    single = ssd_loss(box_codes, class_logits, box_targets, class_targets, positives)[0]
    doubled = ssd_loss(*(torch.cat([t, t]) for t in (box_codes, class_logits, box_targets, class_targets, positives)))
    assert doubled[0].item() == pytest.approx(single.item(), rel=1e-12)  # twice the sum over twice the matches
    assert doubled[1][3] == 12


def test_loss_gradients_flow_where_the_loss_looks():
    box_codes, class_logits, box_targets, class_targets, positives = random_batch(5)
    loss, _ = ssd_loss(box_codes, class_logits, box_targets, class_targets, positives)
    loss.backward()
    box_grad = box_codes.grad.abs().sum(dim=-1)
    assert (box_grad[positives] > 0).all() and (box_grad[~positives] == 0).all()
    counted = class_logits.grad.abs().sum(dim=-1) > 0
    assert counted.sum() == 3 + 9 + 3  # positives, 3 negatives each, 3 negatives in the image without positives
    assert counted[positives].all()
    with pytest.raises(ValueError, match="class_targets must be"):
        ssd_loss(box_codes, class_logits, box_targets, class_targets[:, :5], positives)


# --- postprocess --------------------------------------------------------------------------------------------


def py_postprocess(codes, logits, anchors, threshold, iou, max_detections, max_per_class):
    """TF's multiclass NMS, class by class, then merged, clipped, pruned and cut."""
    boxes = []
    for (ty, tx, th, tw), (cy_a, cx_a, h_a, w_a) in zip(codes, anchors, strict=True):
        h, w = math.exp(th / 5) * h_a, math.exp(tw / 5) * w_a
        cy, cx = ty / 10 * h_a + cy_a, tx / 10 * w_a + cx_a
        boxes.append([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
    scores = [[1 / (1 + math.exp(-x)) for x in row[1:]] for row in logits]
    found = []
    for label in range(len(scores[0])):
        candidates = [a for a in range(len(boxes)) if scores[a][label] > threshold]
        kept = py_nms(
            [boxes[a] for a in candidates],
            [scores[a][label] for a in candidates],
            [0] * len(candidates),
            iou,
            cap=max_per_class,
        )
        found += [(-scores[candidates[k]][label], label, candidates[k]) for k in kept]
    result = []
    for negative_score, label, anchor in sorted(found):
        box = [min(max(v, 0.0), 1.0) for v in boxes[anchor]]
        if (box[2] - box[0]) * (box[3] - box[1]) > 0:
            result.append((box, -negative_score, label))
    return result[:max_detections]


@pytest.mark.parametrize(
    ("seed", "anchors_count", "classes", "max_detections", "max_per_class", "threshold"),
    [(0, 50, 4, 100, 100, 0.3), (1, 50, 4, 10, 100, 0.01), (2, 60, 3, 100, 3, 0.2), (3, 250, 5, 1000, 1000, 1e-8)],
)
def test_postprocess_matches_brute_force(seed, anchors_count, classes, max_detections, max_per_class, threshold):
    generator = torch.Generator().manual_seed(seed)
    anchors = torch.cat(
        [
            torch.rand(anchors_count, 2, generator=generator),
            0.1 + 0.3 * torch.rand(anchors_count, 2, generator=generator),
        ],
        dim=1,
    ).double()
    codes = 3 * torch.randn(2, anchors_count, 4, generator=generator, dtype=torch.float64)
    codes[:, :8, :2] += 60  # moved by 6 anchor sizes: some land outside the image and are dropped
    logits = torch.randint(-4, 3, (2, anchors_count, classes + 1), generator=generator).double() / 2  # tied scores
    results = postprocess(codes, logits, anchors, threshold, 0.5, max_detections, max_per_class)
    for image, (boxes, scores, labels) in enumerate(results):
        expected = py_postprocess(
            codes[image].tolist(),
            logits[image].tolist(),
            anchors.tolist(),
            threshold,
            0.5,
            max_detections,
            max_per_class,
        )
        assert len(expected) <= max_detections and len(expected) > 0
        assert labels.tolist() == [label for _, _, label in expected]
        assert scores.tolist() == pytest.approx([score for _, score, _ in expected], abs=1e-12)
        expected_boxes = torch.tensor([box for box, _, _ in expected], dtype=torch.float64)
        assert torch.allclose(boxes, expected_boxes, rtol=0, atol=1e-9)


def test_postprocess_never_returns_background():
    anchors = torch.tensor([[0.5, 0.5, 0.2, 0.2]] * 8)
    logits = torch.full((1, 8, 3), -20.0)
    logits[..., 0] = 20.0  # background certain everywhere
    ((boxes, scores, labels),) = postprocess(torch.zeros(1, 8, 4), logits, anchors, score_threshold=0.01)
    assert len(boxes) == len(scores) == len(labels) == 0
    logits[0, 3, 2] = 5.0
    ((boxes, scores, labels),) = postprocess(torch.zeros(1, 8, 4), logits, anchors, score_threshold=0.01)
    assert labels.tolist() == [1] and torch.allclose(boxes, torch.tensor([[0.4, 0.4, 0.6, 0.6]]))
    with pytest.raises(ValueError, match="anchors must be"):
        postprocess(torch.zeros(1, 8, 4), logits, anchors[:5])
