"""A fourth kind of model (``tests/kinds/keypoints.py``) installed from the tests alone, as a plugin's distribution
would install it: it trains, predicts and evaluates through the unchanged trainer and command line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers.data import ROOT
from tests.helpers.runs import cli
from tests.helpers.samples import write_digits
from tests.kinds.plugin import plugin_installed


def test_the_library_knows_nothing_of_it() -> None:
    knows = re.compile(r"tests\.kinds|Keypoint|keypoints_mobilenet")
    mentions = [path for path in (ROOT / "src").rglob("*.py") if knows.search(path.read_text())]
    assert mentions == []


@pytest.mark.slow
def test_a_fourth_kind_trains_predicts_and_evaluates_through_the_unchanged_command_line(tmp_path: Path) -> None:
    data = write_digits(tmp_path / "points", 400, keypoints=True)
    truth = json.loads((data / "keypoints.json").read_text())
    with plugin_installed(tmp_path / "plugin"):
        run = tmp_path / "run"
        trained = cli("train", "--task", "keypoints", "--data", str(data), "--epochs", "8", "--out", str(run),
                      "--json", timeout=600)  # fmt: skip
        assert trained.returncode == 0, trained.stderr
        figures = json.loads(trained.stdout)
        assert figures["best_metric"] == "pck" and figures["val"]["metrics"]["pck"] > 0.75, figures  # 0.9 seen
        weights = run / "best.safetensors"

        images = sorted(data.glob("*.png"))[:10]
        predicted = cli("predict", *map(str, images), "--weights", str(weights), "--json")
        assert predicted.returncode == 0, predicted.stderr
        errors = [
            np.abs(np.asarray(json.loads(line)["keypoints"]) / Image.open(image).size - truth[image.name]).max()
            for line, image in zip(predicted.stdout.splitlines(), images, strict=True)
        ]  # in the image's own pixels, back to fractions of it
        assert np.mean(errors) < 0.1, errors

        scored = cli("eval", "--weights", str(weights), "--data", str(data), "--json", "--workers", "0")
        assert scored.returncode == 0, scored.stderr
        report = json.loads(scored.stdout)
        assert report["n"] == 400 and report["pck"] > 0.75, report

        refused = cli("segment", str(images[0]), "--weights", str(weights))
        assert refused.returncode == 2
        assert refused.stderr.strip() == (
            f"mobilenet: error: {weights} holds a keypoints model, not a segmentation one: run it with "
            "`mobilenet predict`"
        )
