"""Saving and loading weights: safetensors with metadata, state dicts, and clear errors."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

import mobilenet
from mobilenet.nn.preprocessing import TF_MEAN, Preprocessing
from mobilenet.weights import load_model, load_state_dict, read_checkpoint, save_weights


def trained_like(model: mobilenet.MobileNet) -> mobilenet.MobileNet:
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
    return model.eval()


def test_safetensors_round_trip_with_metadata(tmp_path) -> None:
    model = trained_like(mobilenet.mobilenet_v2(width_mult=0.5, num_classes=3, dropout=0.1, input_size=160))
    pre = Preprocessing(input_size=160, mean=TF_MEAN, std=TF_MEAN)
    path = tmp_path / "model.safetensors"
    save_weights(model, path, class_names=["cat", "dog", "fox"], preprocessing=pre)
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    assert json.loads(metadata["mobilenet.config"])["width_mult"] == 0.5

    loaded = load_model(path).eval()
    assert loaded.config == model.config
    assert loaded.class_names == ["cat", "dog", "fox"]
    assert loaded.preprocessing == pre
    x = torch.randn(2, 3, 160, 160)
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    assert not list(tmp_path.glob(".*tmp"))  # the temporary file was renamed, not left behind


def test_overrides_and_names_when_loading(tmp_path) -> None:
    path = tmp_path / "v2.safetensors"
    save_weights(mobilenet.mobilenet_v2(width_mult=0.75), path)
    model = mobilenet.create_model("mobilenet_v2_075", weights=path, output_stride=16, dropout=0.0)
    assert model.config.output_stride == 16 and model.config.width_mult == 0.75
    with pytest.raises(ValueError, match=r"holds mobilenet_v2 width 0.75 .* \(mobilenet_v2_075\)"):
        mobilenet.create_model("mobilenet_v2_100", weights=path)
    features = mobilenet.create_model("mobilenet_v2_075", weights=path, features_only=True)
    assert len(features(torch.randn(1, 3, 64, 64))) == 6  # five strides, the last bottleneck, the 1x1 conv


def test_save_refuses_wrong_class_names(tmp_path) -> None:
    with pytest.raises(ValueError, match="2 class names for a model with 3 classes"):
        save_weights(mobilenet.mobilenet_v2(num_classes=3), tmp_path / "x.safetensors", class_names=["a", "b"])


def test_atomic_save_keeps_the_old_file_on_failure(tmp_path, monkeypatch) -> None:
    path = tmp_path / "model.safetensors"
    save_weights(mobilenet.mobilenet_v1(width_mult=0.25), path)
    before = path.read_bytes()

    def crash(self: Path, data: bytes) -> None:  # the disk fills up half-way through the file
        with open(self, "wb") as handle:
            handle.write(data[: len(data) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_bytes", crash)
    with pytest.raises(OSError, match="disk full"):
        save_weights(mobilenet.mobilenet_v1(width_mult=0.25), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]


def test_torchvision_style_pth_loads_strictly(tmp_path) -> None:
    source = trained_like(mobilenet.mobilenet_v2(width_mult=0.5))
    path = tmp_path / "tv.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, path)
    model = mobilenet.mobilenet_v2(weights=path, width_mult=0.5).eval()
    x = torch.randn(1, 3, 96, 96)
    torch.testing.assert_close(model(x), source(x))


def test_checkpoint_of_another_shape_is_one_clear_error(tmp_path) -> None:
    path = tmp_path / "small.pth"
    torch.save(mobilenet.mobilenet_v2(width_mult=0.5, num_classes=10).state_dict(), path)
    with pytest.raises(ValueError) as error:
        mobilenet.mobilenet_v2(weights=path)
    message = str(error.value)
    assert "does not fit mobilenet_v2 width 1 with 1000 classes" in message
    assert "differ in shape" in message and "16-channel stem, 10 classes" in message
    assert "\n" not in message
    with pytest.raises(ValueError, match=r"missing .*looks like mobilenet_v1"):
        load_state_dict(mobilenet.mobilenet_v2(), mobilenet.mobilenet_v1().state_dict())


def test_pickles_never_run_code(tmp_path) -> None:
    class Exploit:
        def __reduce__(self):
            return (exec, ("import pathlib; pathlib.Path('pwned').touch()",))

    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"features.0.0.weight": Exploit()}))
    with pytest.raises(ValueError, match=r"cannot read .* as a PyTorch state dict"):
        read_checkpoint(path)
    assert not (tmp_path / "pwned").exists() and not __import__("pathlib").Path("pwned").exists()


def test_missing_or_foreign_files(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        read_checkpoint(tmp_path / "nope.safetensors")
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], path)
    with pytest.raises(ValueError, match="holds no state dict"):
        read_checkpoint(path)
