"""ExecuTorch programs (mobilenet.inference.pte, the "executorch" backend): each kind exports, runs in ExecuTorch's own
runtime as PyTorch runs it, and goes wherever an exported graph goes (``predict``, ``detect``, ``load_deployed``);
int8 keeps a real classifier's top-1 on real images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mobilenet.data.images import image_batch
from mobilenet.inference.deploy import deploy
from mobilenet.registry import kind_of_file, load, load_deployed
from tests.helpers.data import png_bytes, shared_path
from tests.helpers.faults import assert_refused, run_in_process
from tests.helpers.models import exported_tiny, tiny_weights

pytest.importorskip("executorch", reason="ExecuTorch programs need its runtime: pip install 'mobilenet[executorch]'")


def exported(tmp_path: Path, kind: str) -> tuple[Path, Path]:
    weights, program, printed = exported_tiny(tmp_path, kind, ".pte")
    assert "ExecuTorch fp32 (XNNPACK)" in printed and "differ from PyTorch by at most" in printed
    return weights, program


@pytest.mark.parametrize("kind", ["classifier", "segmenter", "detector"])
def test_each_kind_runs_in_executorch_as_in_pytorch(tmp_path, kind) -> None:
    weights, program = exported(tmp_path, kind)
    model = load(weights).eval()
    deployed = load_deployed(program)
    assert (deployed.backend, deployed.precision, deployed.class_names) == ("executorch", "fp32", ["a", "b", "c"])
    assert kind_of_file(program).file_kind == getattr(model, "kind", "mobilenet")
    size = model.preprocessing.input_size
    x = torch.randn(3, 3, size, size)  # three images: one execution each, the outputs concatenated
    with torch.no_grad():
        ours, theirs = model(x), deployed(x)
    for mine, file in zip(*(o if isinstance(o, tuple) else (o,) for o in (ours, theirs)), strict=True):
        torch.testing.assert_close(file, mine, atol=1e-4, rtol=1e-4)
    if kind == "detector":  # its anchors: the program's constant last output, read once
        torch.testing.assert_close(deployed.anchors(size, size), model.anchors(size, size))


def test_an_exported_program_detects_from_the_command_line_and_deploy_runs_the_backend(tmp_path) -> None:
    weights, program = exported(tmp_path, "detector")
    image = tmp_path / "photo.png"
    image.write_bytes(png_bytes(96, 128, seed=4))
    runs = ((weights, "eager"), (program, "auto"))
    found = [run_in_process(["detect", str(image), "--weights", str(path), "--score", "0.01", "--json", "--backend",
                             backend]) for path, backend in runs]  # fmt: skip
    ours, theirs = (json.loads(outcome.stdout)["detections"] for outcome in found)
    assert ours and [d["class"] for d in ours] == [d["class"] for d in theirs]
    for a, b in zip(ours, theirs, strict=True):  # pixels to 2 decimals, scores to 4
        assert a["box"] == pytest.approx(b["box"], abs=0.011) and a["score"] == pytest.approx(b["score"], abs=2e-4)
    line = assert_refused(run_in_process(["detect", str(image), "--weights", str(program), "--backend", "torch"]))
    assert "runs in executorch as it was saved" in line

    model = load(weights).eval()
    in_memory = deploy(model, "executorch", "fp32", threads=1)
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        for mine, file in zip(model(x), in_memory(x), strict=True):
            torch.testing.assert_close(file, mine, atol=1e-4, rtol=1e-4)


@pytest.mark.shared
@pytest.mark.slow
def test_int8_keeps_a_real_classifier_s_top1_on_real_images(tmp_path) -> None:
    """Google's MobileNetV1 0.25 at 128 (its float weights), calibrated on 100 Imagenette images, checked on 40
    ImageNet images that it did not see: ExecuTorch's int8 program gives the float model's top-1 on most. The smallest
    MobileNet is the one int8 hurts most (its full-integer TFLite export agreed on about two thirds, BENCHMARKS.md);
    here 70%, where a program that quantized wrongly agrees on none."""
    weights = shared_path("weights/mobilenet_v1_0.25_128_quant.tflite")
    calibration, check = shared_path("imagenette/train/n01440764"), shared_path("imagenet-sample")
    program = tmp_path / "v1.pte"
    outcome = run_in_process(["export", str(weights), str(program), "--precision", "int8", "--calibration",
                              str(calibration), "--images", str(check), "--json"])  # fmt: skip
    assert outcome.code == 0, outcome.describe()
    report = json.loads(outcome.stdout)
    assert (report["format"], report["precision"], report["calibrated_on"]) == ("executorch", "int8", 100)
    assert report["file_size"] < Path(weights).stat().st_size * 1.5  # int8 weights, as Google's own file
    deployed = load_deployed(program)
    assert (deployed.backend, deployed.precision) == ("executorch", "int8")
    model = load(weights).eval()
    images = image_batch(check, model.preprocessing, 40)
    with torch.no_grad():
        agreement = (deployed(images).argmax(1) == model(images).argmax(1)).float().mean().item()
    assert agreement >= 0.6, agreement


def test_refusals(tmp_path) -> None:
    weights = tmp_path / "classifier.safetensors"
    weights.write_bytes(tiny_weights("classifier"))
    line = assert_refused(run_in_process(["export", str(weights), str(tmp_path / "a.pte"), "--precision", "int8"]))
    assert "add --calibration DIR" in line and not (tmp_path / "a.pte").exists()
    line = assert_refused(run_in_process(["export", str(weights), str(tmp_path / "b.pte"), "--argmax"]))
    assert "--argmax writes class indices to ONNX or TorchScript" in line
    damaged = tmp_path / "damaged.pte"
    damaged.write_bytes(b"not a program")
    line = assert_refused(run_in_process(["predict", str(tmp_path), "--weights", str(damaged)]))
    assert "is not an ExecuTorch program (no ExecuTorch header)" in line
