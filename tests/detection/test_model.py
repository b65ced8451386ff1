"""SSDLite's architecture against Google's checkpoint and the paper's tables; anchors against TF's layout."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mobilenet.detection.anchors import anchors_per_cell, box_specs, grid_sizes, ssd_anchors
from mobilenet.detection.config import SSDConfig
from mobilenet.detection.model import SSD
from mobilenet.detection.tables import PAPER_TABLE5, PAPER_TABLE6, count
from mobilenet.detection.tfnames import load_tf_variables, tf_names, tf_to_torch
from tests.helpers.data import shared_path


def checkpoint_shapes() -> dict[str, tuple[int, ...]]:
    """Google's ``ssdlite_mobilenet_v2_coco_2018_05_09`` variables, as its checkpoint index lists them."""
    table = shared_path("detection/ssdlite-mobilenet-v2-coco-checkpoint/tensors.tsv").read_text().splitlines()
    rows = (line.split("\t") for line in table[1:])
    return {name: () if shape == "scalar" else tuple(int(d) for d in shape.split("x")) for name, shape in rows}


@pytest.mark.shared
def test_ssdlite_maps_one_to_one_onto_googles_checkpoint():
    shapes = checkpoint_shapes()
    model = SSD(num_classes=91, input_size=300)
    names = tf_names(model)
    state = model.state_dict()
    assert set(shapes) - set(names) == {"global_step"}  # the optimizer's step is not a weight
    assert set(names) <= set(shapes)
    assert sorted(names.values()) == sorted(k for k in state if not k.endswith("num_batches_tracked"))
    for tf_name, key in names.items():
        converted = tf_to_torch(np.zeros(shapes[tf_name]), tf_name.endswith("depthwise_weights"))
        assert converted.shape == state[key].shape, tf_name


@pytest.mark.shared
def test_loading_tf_variables_by_name_sets_every_tensor():
    model = SSD(num_classes=91, input_size=300)
    rng = np.random.default_rng(0)
    variables = {name: rng.standard_normal(shape).astype(np.float32) for name, shape in checkpoint_shapes().items()}
    load_tf_variables(model, variables, "the checkpoint")
    depthwise = variables["BoxPredictor_3/ClassPredictor_depthwise/depthwise_weights"]  # 3x3x256x1
    assert torch.equal(model.class_heads[3][0][0].weight[17, 0], torch.from_numpy(depthwise[:, :, 17, 0]))
    pointwise = variables["FeatureExtractor/MobilenetV2/layer_19_2_Conv2d_2_3x3_s2_512/weights"]  # 1x1x256x512
    assert torch.equal(model.extras[0][2][0].weight[5, :, 0, 0], torch.from_numpy(pointwise[0, 0, :, 5]))
    del variables["BoxPredictor_0/ClassPredictor/biases"]
    with pytest.raises(ValueError, match="lacks 1 of SSDLite's 404 tensors"):
        load_tf_variables(model, variables, "the checkpoint")


def test_feature_maps_and_anchor_counts_at_300_and_320():
    for size, grids, total in ((300, [19, 10, 5, 3, 2, 1], 1917), (320, [20, 10, 5, 3, 2, 1], 2034)):
        model = SSD(input_size=size, num_classes=3).eval()
        maps = model.feature_maps(torch.zeros(1, 3, size, size))
        assert [m.shape[-1] for m in maps] == grids
        assert [m.shape[1] for m in maps] == [576, 1280, 512, 256, 256, 128]
        assert grid_sizes(model.config, size, size) == [(g, g) for g in grids]
        boxes, logits = model(torch.zeros(1, 3, size, size))
        assert boxes.shape == (1, total, 4) and logits.shape == (1, total, 3)
        assert model.anchors(size, size).shape == (total, 4)
    assert anchors_per_cell(SSDConfig()) == [3, 6, 6, 6, 6, 6]


def test_anchor_layout_is_tfs_with_the_interpolated_box_last():
    config = SSDConfig()
    specs = box_specs(config)
    scales = [0.2 + 0.15 * i for i in range(6)]  # 0.2 to 0.95 over six layers
    assert specs[0] == [(0.1, 1.0), (0.2, 2.0), (0.2, 0.5)]
    assert specs[2][:5] == [(pytest.approx(scales[2]), r) for r in (1.0, 2.0, 0.5, 3.0, 0.3333)]
    assert specs[2][5] == (pytest.approx(math.sqrt(scales[2] * scales[3])), 1.0)
    assert specs[5][5] == (pytest.approx(math.sqrt(0.95 * 1.0)), 1.0)
    anchors = ssd_anchors(config, grid_sizes(config, 300, 300))
    # The second layer (10x10 cells) starts after 19*19*3 anchors; its cell (row 0, column 1) after 6 more.
    cell = anchors[19 * 19 * 3 + 6 : 19 * 19 * 3 + 12]
    assert torch.allclose(cell[:, 0], torch.tensor(0.05)) and torch.allclose(cell[:, 1], torch.tensor(0.15))
    s, s_next = scales[1], scales[2]
    expected_hw = [(s / math.sqrt(r), s * math.sqrt(r)) for r in (1.0, 2.0, 0.5, 3.0, 0.3333)]
    expected_hw.append((math.sqrt(s * s_next), math.sqrt(s * s_next)))
    assert torch.allclose(cell[:, 2:], torch.tensor(expected_hw), atol=1e-6)


def test_a_lowest_layer_at_stride_8_reads_the_expansion_of_layer_7_with_every_box():
    """For small objects: V2's ``layer_7/expansion_output`` (192 channels, stride 8) as one more anchor layer, with
    every aspect ratio at min_scale where TF's lowest layer has three boxes."""
    config = SSDConfig(num_classes=4, lowest_layer_stride=8, reduce_boxes_in_lowest_layer=False, min_scale=0.07)
    model = SSD(config).eval()
    expanded = []
    model.backbone.features[7].conv[0].register_forward_hook(lambda _module, _args, out: expanded.append(out))
    x = torch.randn(1, 3, 320, 320)
    maps = model.feature_maps(x)
    assert [m.shape[-1] for m in maps] == [40, 20, 10, 5, 3, 2, 1] and maps[0].shape[1] == 192
    assert torch.equal(maps[0], expanded[0])
    assert anchors_per_cell(config) == [6] * 7
    scales = [0.07 + (0.95 - 0.07) * i / 6 for i in range(7)]
    assert box_specs(config)[0][:5] == [(pytest.approx(0.07), r) for r in (1.0, 2.0, 0.5, 3.0, 0.3333)]
    assert box_specs(config)[0][5] == (pytest.approx(math.sqrt(scales[0] * scales[1])), 1.0)
    assert model(x)[0].shape == (1, 6 * (40 * 40 + 20 * 20 + 10 * 10 + 25 + 9 + 4 + 1), 4)
    v1 = SSD(arch="mobilenet_v1", lowest_layer_stride=8, num_classes=4)
    assert v1.backbone.feature_info.channels() == [256, 512, 1024]  # Conv2d_5, 11 and 13_pointwise
    assert anchors_per_cell(v1.config) == [3, 6, 6, 6, 6, 6, 6]
    with pytest.raises(ValueError, match="lowest_layer_stride must be one of 8, 16, 32, got 4"):
        SSDConfig(lowest_layer_stride=4)


def test_predictions_follow_the_anchor_order():
    """Box code k of the output belongs to anchor k: a bias on one channel of one cell lands on that anchor."""
    model = SSD(input_size=320, num_classes=2).eval()
    with torch.no_grad():
        model.box_heads[1][-1].bias[4 * 5 + 2] = 1000.0  # the 6th (interpolated) anchor's th, at every cell
        boxes, _ = model(torch.zeros(1, 3, 320, 320))
    start = 20 * 20 * 3
    hot = (boxes[0, :, 2] > 500).nonzero().flatten()
    assert hot.tolist() == [start + cell * 6 + 5 for cell in range(100)]


def test_regular_ssd_and_v1_build_from_the_same_builder():
    ssd = SSD(separable=False, predictor_kernel=3, num_classes=81)
    assert ssd.box_heads[0][0].kernel_size == (3, 3) and len(ssd.extras[0]) == 2
    v1 = SSD(arch="mobilenet_v1", width_mult=0.75, num_classes=91)
    assert v1.backbone.feature_info.channels() == [384, 768]
    with pytest.raises(ValueError, match="background column"):
        SSDConfig(num_classes=1)


@pytest.mark.parametrize("row", [*PAPER_TABLE5, *PAPER_TABLE6], ids=lambda r: r.label)
def test_counts_beside_tables_5_and_6(row):
    ours = count(row)
    assert ours.params_m == pytest.approx(row.paper_params_m, abs=0.06)
    if row.label != "SSDLite head":  # the paper's 0.35B for the head alone is twice what its weights compute
        assert ours.madds_b == pytest.approx(row.paper_madds_b, rel=0.04)
