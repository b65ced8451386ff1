"""The Hugging Face Hub layout, against a local folder and through ``huggingface_hub`` from a stand-in for the Hub on
127.0.0.1 (``tests/helpers/hub_server.py``): the Hub itself is not reachable in tests."""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import mobilenet
from mobilenet.nn.model import MobileNet
from mobilenet.weights.hub import from_pretrained, save_pretrained
from tests.helpers.hub_server import HubServer, serving
from tests.helpers.models import trained_like


def saved_tiny(folder: Path) -> tuple[MobileNet, Path]:
    """A tiny classifier of three named classes, and the Hub folder ``save_pretrained`` writes of it."""
    model = trained_like(mobilenet.create_model("mobilenet_v2_035", num_classes=3, input_size=96)).eval()
    model.class_names = ["cat", "dog", "bird"]
    return model, save_pretrained(model, folder, metrics={"top1": 0.875})


def assert_same_model(loaded: MobileNet, model: MobileNet) -> None:
    """The same classes, preprocessing and logits, bit for bit."""
    assert loaded.class_names == model.class_names and loaded.preprocessing == model.preprocessing
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(x), model(x), rtol=0, atol=0)


def test_a_hub_folder_round_trips_with_its_card(tmp_path) -> None:
    model, folder = saved_tiny(tmp_path / "repo")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((folder / "config.json").read_text())
    assert config["model"] == "mobilenet_v2_035" and config["class_names"] == ["cat", "dog", "bird"]
    assert config["preprocessing"]["input_size"] == 96 and config["metrics"] == {"top1": 0.875}
    card = (folder / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: mobilenet\n") and "| top1 | 87.50% |" in card
    assert_same_model(from_pretrained(folder), model)


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


@pytest.fixture
def tiny_on_the_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[MobileNet, HubServer]]:
    """A tiny model and the stand-in serving its Hub folder as ``someone/mobilenet-tiny``, with ``huggingface_hub``
    pointed at it and its cache in ``tmp_path``; stopped afterwards, its threads joined."""
    pytest.importorskip("huggingface_hub", reason="the Hub needs huggingface_hub: pip install 'mobilenet[hub]'")
    model, folder = saved_tiny(tmp_path / "repo")
    with serving({("model", "someone/mobilenet-tiny"): folder}, monkeypatch, tmp_path / "hf") as server:
        yield model, server


def test_a_repository_downloads_as_the_model_it_was_saved_from(
    tiny_on_the_hub: tuple[MobileNet, HubServer], tmp_path: Path
) -> None:
    model, hub = tiny_on_the_hub
    assert_same_model(from_pretrained("someone/mobilenet-tiny"), model)
    for name in ("config.json", "model.safetensors"):  # downloaded, into the cache in tmp_path
        assert f"GET /someone/mobilenet-tiny/resolve/main/{name}" in hub.requests
    assert len(list((tmp_path / "hf" / "hub" / "models--someone--mobilenet-tiny" / "snapshots").glob("*/*"))) == 2
    with pytest.raises(OSError, match=r"someone/mobilenet-missing from the Hugging Face Hub \(no such repository"):
        from_pretrained("someone/mobilenet-missing")
    with pytest.raises(OSError, match=r"fetch someone/mobilenet-tiny from the Hugging Face Hub \(no revision v9\)"):
        from_pretrained("someone/mobilenet-tiny", revision="v9")
    assert hub.unserved_for("someone/mobilenet-tiny") == []  # huggingface_hub was answered all it asked of it
