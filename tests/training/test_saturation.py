"""Layers that stopped passing anything on: their channels counted on known outputs, and the run that says so."""

from __future__ import annotations

import json

import pytest
import torch

from mobilenet import create_model
from mobilenet.tasks import make_config, trainer
from mobilenet.training.saturation import TRAINING_EVERY, ConstantChannels, stopped_layers
from tests.helpers.runs import TINY


def stop_channels(model: torch.nn.Module, at_zero: slice, at_six: slice) -> None:
    """Make channels of the last layer's ReLU6 give 0 (or 6) for any input: its BatchNorm shifts them far out."""
    with torch.no_grad():
        norm = model.features[18][1]
        norm.bias[at_zero] = -1e4
        norm.bias[at_six] = 1e4


def test_constant_channels_are_counted_per_layer_and_only_where_they_vary_nowhere() -> None:
    torch.manual_seed(0)
    model = create_model("mobilenet_v2_035", num_classes=5).eval()
    stop_channels(model, slice(0, 600), slice(600, 700))
    images = torch.randn(4, 3, 96, 96)  # a 3x3 last map: 36 outputs per channel
    with torch.no_grad():
        last = model.features(images)  # the last layer's output, by hand: channels equal at every place
    with ConstantChannels(model) as constant, torch.no_grad():
        model(images)
    constant_by_hand = int((last.amax((0, 2, 3)) == last.amin((0, 2, 3))).sum())
    counts = constant.counts(torch.device("cpu"))
    assert counts["features.18"] == (constant_by_hand, 1280)  # named by its block, not "features.18.2"
    assert 700 <= constant_by_hand < 1280
    assert counts["features.17.conv.0"][1] == 336 and counts["features.17.conv.0"][0] < 336
    assert stopped_layers(counts) == []
    stop_channels(model, slice(700, 1280), slice(0, 0))
    with ConstantChannels(model) as constant, torch.no_grad():
        model(images)
    assert stopped_layers(constant.counts(torch.device("cpu"))) == ["features.18"]
    # Eight images on a 1x1 map give each channel 8 outputs: too few to call a channel constant, nothing counted.
    with ConstantChannels(model) as constant, torch.no_grad():
        model(torch.randn(8, 3, 32, 32))
    assert "features.18" not in constant.counts(torch.device("cpu"))
    seen = dict(constant.values)
    with torch.no_grad():
        model(images)
    assert constant.values == seen  # closed: the hooks are gone


def test_a_sampled_grid_counts_the_centred_rows_and_columns() -> None:
    torch.manual_seed(0)
    model = create_model("mobilenet_v2_035", num_classes=5).eval()
    images = torch.randn(16, 3, 96, 96)  # 3x3 last maps: of every 4th row and column, centred, only the centre
    with torch.no_grad():
        centre = model.features(images)[:, :, 1, 1]
    with ConstantChannels(model, every=TRAINING_EVERY) as constant, torch.no_grad():
        model(images)
    counts = constant.counts(torch.device("cpu"))
    assert counts["features.18"] == (int((centre.amax(0) == centre.amin(0)).sum()), 1280)
    assert constant.values["features.18.2"] == 16  # one place of each image


def test_a_run_says_when_a_layer_stops_and_records_it(tmp_path) -> None:
    run = trainer(make_config(**{**TINY, "epochs": 1}, workers=0, out=str(tmp_path / "run")), progress=False)
    for model in (run.model, *([run.ema.module] if run.ema is not None else [])):
        stop_channels(model, slice(0, 1280), slice(0, 0))
    with pytest.warns(UserWarning, match=r"after epoch 1, every channel of features\.18 gives one value on every"):
        result = run.run()
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["stopped_layers"] == {"features.18": 1}
