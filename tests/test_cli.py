"""The command line, run as users run it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

import mobilenet
from mobilenet.cli import main
from mobilenet.weights import save_weights
from tests.conftest import shared_path


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mobilenet", *args], capture_output=True, text=True, timeout=300)


def test_profile_default_is_v2_table_2() -> None:
    result = run("profile")
    assert result.returncode == 0, result.stderr
    assert "112x112x16  bottleneck     6    24  2  2" in result.stdout
    assert "parameters 3,504,872 (3,470,760 without BatchNorm)" in result.stdout
    assert "(300.8M)" in result.stdout


def test_profile_width_resolution_json_and_plot(tmp_path, capsys) -> None:
    assert main(["profile", "mobilenet_v1_100", "--width", "0.5", "--resolution", "160", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["width_mult"] == 0.5 and data["resolution"] == 160
    assert sum(layer["madds"] for layer in data["layers"]) == pytest.approx(77e6, rel=0.01)
    png = tmp_path / "profile.png"
    assert main(["profile", "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_profile_grid_prints_every_cell(capsys) -> None:
    assert main(["profile", "--grid"]) == 0
    out = capsys.readouterr().out
    assert out.count("within 1%") >= 25 and out.count("not reproduced") == 8
    assert "0.35   96       11M    11.9M" in out


def test_list(capsys) -> None:
    assert main(["list", "mobilenet_v1_*"]) == 0
    assert capsys.readouterr().out.count("mobilenet_v1_") == 4


@pytest.fixture
def small_weights(tmp_path):
    model = mobilenet.mobilenet_v2(width_mult=0.35, num_classes=3, input_size=64)
    path = tmp_path / "small.safetensors"
    save_weights(model, path, class_names=["red", "green", "blue"])
    return path


@pytest.fixture
def images(tmp_path):
    from PIL import Image

    paths = []
    for i, mode in enumerate(["RGB", "L", "CMYK", "RGBA"]):
        path = tmp_path / f"img{i}.{'png' if mode == 'RGBA' else 'jpg'}"
        Image.new(mode, (80 + i * 20, 70)).save(path)
        paths.append(str(path))
    return paths


def test_predict_json_lines(small_weights, images, capsys) -> None:
    assert main(["predict", *images, "--weights", str(small_weights), "--top", "2", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["image"] for line in lines] == images
    for line in lines:
        assert len(line["top"]) == 2
        assert {entry["name"] for entry in line["top"]} <= {"red", "green", "blue"}
        assert 0 <= line["top"][1]["prob"] <= line["top"][0]["prob"] <= 1


def test_predict_bad_image_is_reported_and_others_still_run(small_weights, images, tmp_path, capsys) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    code = main(["predict", str(broken), images[0], "--weights", str(small_weights)])
    captured = capsys.readouterr()
    assert code == 1
    assert f"{broken}: cannot read image" in captured.err
    assert images[0] in captured.out


def test_errors_are_one_line(tmp_path) -> None:
    result = run("predict", "x.jpg", "--weights", str(tmp_path / "missing.safetensors"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"mobilenet: error: weights file not found: {tmp_path}/missing.safetensors"
    ]


@pytest.mark.shared
def test_convert_tflite_and_predict_real_image(tmp_path) -> None:
    tflite = shared_path("weights/mobilenet_v2_1.0_224_quant.tflite")
    image = shared_path("imagenet-sample/n01530575_brambling.JPEG")
    out = tmp_path / "v2.safetensors"
    assert run("convert", str(tflite), str(out)).returncode == 0
    result = run("predict", str(image), "--weights", str(out), "--json", "--top", "1")
    top = json.loads(result.stdout)["top"][0]
    assert top["index"] == 10 and top["name"].startswith("brambling") and top["prob"] > 0.5
    direct = mobilenet.create_model("mobilenet_v2", weights=tflite).eval()
    converted = mobilenet.create_model("mobilenet_v2", weights=out).eval()
    assert converted.class_names == direct.class_names
    x = torch.randn(1, 3, 224, 224)
    torch.testing.assert_close(converted(x), direct(x), rtol=0, atol=0)


def test_export_onnx_cli(small_weights, images, tmp_path) -> None:
    pytest.importorskip("onnxruntime", reason="ONNX export is checked with onnxruntime: pip install 'mobilenet[onnx]'")
    out = tmp_path / "model.onnx"
    result = run("export", str(small_weights), str(out), "--images", images[0])
    assert result.returncode == 0, result.stderr
    assert "outputs differ from PyTorch by at most" in result.stdout and out.stat().st_size > 100_000
