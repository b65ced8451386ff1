"""The command line, run as users run it."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys

import pytest
import torch

import mobilenet
from mobilenet.cli import main
from mobilenet.weights import save_weights
from mobilenet.weights.load import load_model
from tests.helpers.data import shared_path
from tests.helpers.runs import TINY, flags


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
    assert capsys.readouterr().out.count("mobilenet_v1_") == 5  # four widths, and timm's _100h


def test_list_json(capsys) -> None:
    assert main(["list", "mobilenet_v2_1*", "--json"]) == 0
    models = json.loads(capsys.readouterr().out)
    names = ["mobilenet_v2_100", "mobilenet_v2_110d", "mobilenet_v2_120d", "mobilenet_v2_130", "mobilenet_v2_140"]
    assert [m["name"] for m in models] == names
    shapes = [(m["width_mult"], m["depth_mult"]) for m in models]
    assert shapes == [(1.0, 1), (1.1, 1.2), (1.2, 1.4), (1.3, 1), (1.4, 1)]
    assert {m["arch"] for m in models} == {"mobilenet_v2"} and models[0]["num_classes"] == 1000


def test_profile_grid_json(capsys) -> None:
    assert main(["profile", "--grid", "--json"]) == 0
    cells = json.loads(capsys.readouterr().out)
    assert len(cells) == 38 and {c["published"]["arch"] for c in cells} == {"mobilenet_v2", "mobilenet_v1"}
    assert {"madds", "params_without_norm", "madds_error", "verdict", "ok"} <= set(cells[0])


def command_names() -> list[str]:
    """The subcommands, as ``mobilenet --help`` lists them."""
    result = run("--help")
    assert result.returncode == 0, result.stderr
    return re.search(r"\{([a-z,]+)\}", result.stdout).group(1).split(",")


def test_every_subcommand_help_exits_0(capsys) -> None:
    names = command_names()
    assert {"list", "convert", "export", "train", "predict", "eval", "profile", "bench", "pick"} <= set(names)
    for name in names:
        with pytest.raises(SystemExit) as done:
            main([name, "--help"])
        assert done.value.code == 0, name
        out = capsys.readouterr().out
        assert out.startswith(f"usage: mobilenet {name}"), out
        assert "(default: None)" not in out and "(default: False)" not in out, f"{name}: an unset default shown"


def test_help_shows_defaults_and_choices(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "--threads THREADS threads for every path (default: 2)" in out
    assert "--precisions {fp32,bf16,int8} [{fp32,bf16,int8} ...]" in out and "(default: fp32 bf16 int8)" in out
    with pytest.raises(SystemExit):
        main(["profile", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "(choices: mobilenet_v1," in out and "(default: mobilenet_v2_100)" in out  # NAME hides its choices


def test_train_help_describes_every_flag_with_its_default_and_groups_them_by_task(capsys) -> None:
    with pytest.raises(SystemExit) as done:
        main(["train", "--help"])
    assert done.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "--optimizer {sgd,rmsprop,adamw} the optimizer (default: sgd; adamw with deeplab, ssdlite)" in out
    assert "--shortcut {bottleneck,expansion,none} where V2's residuals join" in out
    assert "(default: 0.1; 0.05 with the embedded digits; 0.002 with deeplab; 0.001 with ssdlite)" in out  # --lr
    assert "--amp {true,false} mixed precision" in out and "--epochs INT passes over the training data" in out
    titles = re.findall(r"settings of (?:every task|the [a-z ]+ tasks?):", out)
    assert titles == [
        "settings of every task:",
        "settings of the classification task:",
        "settings of the classification and segmentation tasks:",  # --dropout, --label-smoothing
        "settings of the segmentation task:",
        "settings of the detection task:",
    ]
    from mobilenet.cli import build_parser

    commands = next(a for a in build_parser(["train"])._actions if isinstance(a, argparse._SubParsersAction))
    unset = ("help", "recipe", "task", "resume", "json")
    settings = [action for action in commands.choices["train"]._actions if action.dest not in unset]
    assert len(settings) > 50
    for action in settings:  # each says what it does, then what it is when the flag is absent
        assert re.fullmatch(r"\S.{10,} \(default: .+\)", action.help, flags=re.DOTALL), action.option_strings


def test_train_choices_are_checked_while_parsing(capsys) -> None:
    from mobilenet.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["train", "--shortcut", "none"]).shortcut == "none"  # the ablation, not "unset"
    assert parser.parse_args(["train", "--lr-batch", "none"]).lr_batch is None
    for bad in (["--optimizer", "adam"], ["--shortcut", "bogus"], ["--lr", "fast"]):
        with pytest.raises(SystemExit) as done:
            parser.parse_args(["train", *bad])
        assert done.value.code == 2
        assert f"argument {bad[0]}: invalid" in capsys.readouterr().err


def test_version_comes_from_the_package(capsys) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"mobilenet {mobilenet.__version__}"


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


def test_convert_json(small_weights, tmp_path, capsys) -> None:
    out = tmp_path / "copy.safetensors"
    assert main(["convert", str(small_weights), str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["source"] == str(small_weights) and result["output"] == str(out) and out.is_file()
    expected = {"arch": "mobilenet_v2", "width_mult": 0.35, "num_classes": 3, "input_size": 64}
    assert {key: result[key] for key in expected} == expected


def test_convert_sets_the_preprocessing(small_weights, tmp_path) -> None:
    """timm's mobilenetv1_100.ra4 tests at crop 0.95, bicubic, mean and std 0.5: convert can say so."""
    out = tmp_path / "timm_like.safetensors"
    settings = ["--crop-pct", "0.95", "--interpolation", "bicubic", "--mean", *["0.5"] * 3, "--std", *["0.5"] * 3]
    assert main(["convert", str(small_weights), str(out), *settings]) == 0
    pre = load_model(out).preprocessing
    assert (pre.crop_pct, pre.interpolation, pre.mean, pre.std) == (0.95, "bicubic", (0.5,) * 3, (0.5,) * 3)
    assert pre.input_size == 64  # not given: the file's
    assert run("convert", str(small_weights), str(out), "--crop-pct", "1.5").returncode == 2  # refused while parsing


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


def test_export_json(small_weights, tmp_path) -> None:
    out = tmp_path / "model.pt"
    result = run("export", str(small_weights), str(out), "--format", "torchscript", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)  # the whole of stdout: one JSON document
    assert report["path"] == str(out) and report["format"] == "torchscript"
    assert report["file_size"] == out.stat().st_size and report["max_abs_diff"] < 1e-4
    assert report["verified_on"] == "2 random inputs"


@pytest.mark.slow
def test_train_json(tmp_path) -> None:
    run_dir = tmp_path / "run"
    result = run("train", *flags(TINY | {"epochs": 1}), "--out", str(run_dir), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)  # progress and the run's folder go to stderr
    assert summary["run_dir"] == str(run_dir) and summary["epochs"] == 1 and summary["best_metric"] == "top1"
    assert set(summary["val"]["metrics"]) == {"loss", "top1", "top5"} and summary["val"]["n"] > 0
    assert "int8" not in summary and summary["skipped_images"] == {"train": 0, "val": 0}
