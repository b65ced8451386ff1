"""The Hugging Face Hub layout, against a local folder (the Hub itself is not reachable in tests)."""

from __future__ import annotations

import importlib
import json

import pytest
import torch

import mobilenet
from mobilenet.weights.hub import from_pretrained, save_pretrained
from tests.helpers.models import trained_like


def test_a_hub_folder_round_trips_with_its_card(tmp_path) -> None:
    model = trained_like(mobilenet.create_model("mobilenet_v2_035", num_classes=3, input_size=96)).eval()
    model.class_names = ["cat", "dog", "bird"]
    folder = save_pretrained(model, tmp_path / "repo", metrics={"top1": 0.875})
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((folder / "config.json").read_text())
    assert config["model"] == "mobilenet_v2_035" and config["class_names"] == ["cat", "dog", "bird"]
    assert config["preprocessing"]["input_size"] == 96 and config["metrics"] == {"top1": 0.875}
    card = (folder / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: mobilenet\n") and "| top1 | 87.50% |" in card
    loaded = from_pretrained(folder).eval()
    assert loaded.class_names == model.class_names and loaded.preprocessing == model.preprocessing
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_a_repository_offline_is_one_clear_error(tmp_path, monkeypatch) -> None:
    pytest.importorskip("huggingface_hub", reason="the Hub needs huggingface_hub: pip install 'mobilenet[hub]'")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    constants = importlib.import_module("huggingface_hub.constants")  # read the variable at import: 45 s of retries
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(OSError, match="cannot fetch someone/mobilenet-missing from the Hugging Face Hub"):
        from_pretrained("someone/mobilenet-missing")
    with pytest.raises(FileNotFoundError, match=r"holds no model\.safetensors"):
        from_pretrained(tmp_path)
