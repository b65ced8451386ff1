"""A graph mobilenet exported runs where its weights run: ``predict``, ``detect`` and ``bench`` take the ONNX file, its
kind and settings read from its metadata, and give what PyTorch gives."""

from __future__ import annotations

import json

import pytest
import torch

from mobilenet.registry import kind_of_file, load, load_deployed
from tests.helpers.data import png_bytes
from tests.helpers.faults import assert_refused, run_in_process
from tests.helpers.models import exported_tiny

pytest.importorskip("onnxruntime", reason="ONNX files run on ONNX Runtime: pip install 'mobilenet[onnx]'")


def results(argv: list[str]) -> list[dict]:
    outcome = run_in_process([*argv, "--json"])
    assert outcome.code == 0, outcome.describe()
    return [json.loads(line) for line in outcome.stdout.splitlines()]


def test_an_exported_classifier_predicts_as_its_weights(tmp_path) -> None:
    weights, graph, _ = exported_tiny(tmp_path, "classifier", ".onnx")
    images = []
    for seed in range(3):
        images.append(tmp_path / f"{seed}.png")
        images[-1].write_bytes(png_bytes(40, 48, seed=seed))
    assert kind_of_file(graph).name == "classification"
    deployed = load_deployed(graph)
    assert (deployed.backend, deployed.precision, deployed.class_names) == ("onnxruntime", "fp32", ["a", "b", "c"])
    ours = results(["predict", *map(str, images), "--weights", str(weights), "--backend", "eager"])
    theirs = results(["predict", *map(str, images), "--weights", str(graph)])
    for mine, file in zip(ours, theirs, strict=True):
        assert [top["name"] for top in mine["top"]] == [top["name"] for top in file["top"]]
        for a, b in zip(mine["top"], file["top"], strict=True):
            assert a["prob"] == pytest.approx(b["prob"], abs=1e-4)
    line = assert_refused(run_in_process(["predict", str(images[0]), "--weights", str(graph), "--backend", "torch"]))
    assert "runs in onnxruntime as it was saved" in line
    argmax = tmp_path / "classes.onnx"
    assert run_in_process(["export", str(weights), str(argmax), "--argmax"]).code == 0
    line = assert_refused(run_in_process(["predict", str(images[0]), "--weights", str(argmax)]))
    assert "gives class indices (exported with --argmax)" in line


def test_an_exported_detector_detects_as_its_weights_and_is_timed_beside_ours(tmp_path) -> None:
    weights, graph, _ = exported_tiny(tmp_path, "detector", ".onnx")
    model, deployed = load(weights).eval(), load_deployed(graph)
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        for ours, file in zip(model(x), deployed(x), strict=True):  # box codes, then class logits
            torch.testing.assert_close(file, ours, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(deployed.anchors(96, 96), model.anchors(96, 96))
    image = tmp_path / "photo.png"
    image.write_bytes(png_bytes(96, 128, seed=4))
    (found,) = results(["detect", str(image), "--weights", str(graph), "--score", "0.01"])
    assert found["image"] == str(image) and found["detections"]
    outcome = run_in_process(["bench", "--weights", str(graph), "--threads", "1", "--batch", "2", "--rounds", "1",
                              "--calls", "1", "--precisions", "fp32", "--backends", "onnxruntime", "--reference",
                              "none", "--json"])  # fmt: skip
    assert outcome.code == 0, outcome.describe()
    (result,) = json.loads(outcome.stdout)
    assert result["kind"] == "ssd" and "detector.onnx (onnxruntime fp32)" in [path["name"] for path in result["paths"]]
