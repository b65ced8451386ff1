"""Datasets of the Hugging Face Hub by name (``hf:NAME[:SPLIT]``), loaded by ``datasets`` itself from a stand-in for
the Hub on 127.0.0.1 (``tests/helpers/hub_server.py``): the same rows, and the same samples for the classification
reader, as the Parquet files they were served from."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mobilenet.classification.data import scan_labelled
from mobilenet.data.tables import open_dataset
from tests.helpers.data import png_bytes
from tests.helpers.hub_server import HubServer, serving

datasets = pytest.importorskip("datasets", reason="Hub datasets need datasets: pip install 'mobilenet[datasets]'")
pytest.importorskip("huggingface_hub", reason="the Hub needs huggingface_hub: pip install 'mobilenet[hub]'")

CLASSES = ["circle", "square"]
SPLITS = {"train": 6, "validation": 3}  # rows per split
# The card that push_to_hub writes: the splits' files, by pattern.
CARD = """---
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train-*
  - split: validation
    path: data/validation-*
---
# tiny
"""


def tiny_repository(folder: Path, card: bool) -> Path:
    """A dataset repository laid out as ``push_to_hub`` lays it out: a Parquet file per split in ``data/`` (PNG
    images, a ``ClassLabel``), and its card if ``card``."""
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=CLASSES)})
    (folder / "data").mkdir(parents=True)
    for offset, (split, count) in enumerate(SPLITS.items()):
        images = [{"bytes": png_bytes(12, 16, seed=100 * offset + i), "path": None} for i in range(count)]
        rows = datasets.Dataset.from_dict({"image": images, "label": [i % 2 for i in range(count)]}, features=features)
        rows.to_parquet(str(folder / "data" / f"{split}-00000-of-00001.parquet"))
    if card:
        (folder / "README.md").write_text(CARD)
    return folder


def parquet(hub: HubServer, split: str) -> Path:
    """The local Parquet file that the stand-in serves as ``someone/tiny``'s ``split``."""
    return hub.repos["dataset", "someone/tiny"].folder / "data" / f"{split}-00000-of-00001.parquet"


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubServer]:
    """The stand-in serving ``someone/tiny`` (with its card) and ``someone/tiny-uncarded`` (its files, no card), with
    ``datasets`` pointed at it and its caches in ``tmp_path``; stopped afterwards, its threads joined."""
    repos = {("dataset", "someone/tiny"): tiny_repository(tmp_path / "tiny", card=True),
             ("dataset", "someone/tiny-uncarded"): tiny_repository(tmp_path / "uncarded", card=False)}  # fmt: skip
    with serving(repos, monkeypatch, tmp_path / "hf") as server:
        yield server


def test_a_hub_dataset_is_its_parquet_files_train_by_default(hub: HubServer) -> None:
    commit = hub.repos["dataset", "someone/tiny"].commit
    for name, split in (("hf:someone/tiny", "train"), ("hf:someone/tiny:validation", "validation")):
        served, local = open_dataset(name), open_dataset(parquet(hub, split))
        assert len(served) == SPLITS[split] and served.features == local.features
        assert served.features["label"].names == CLASSES
        assert served.data.table.to_pylist() == local.data.table.to_pylist()  # the images' bytes, the labels
        assert f"GET /datasets/someone/tiny/resolve/{commit}/data/{split}-00000-of-00001.parquet" in hub.requests
    assert hub.unserved_for("someone/tiny") == []  # the stand-in answered all that datasets asked of it


def test_a_hub_dataset_without_a_card_is_found_by_its_files_names(hub: HubServer) -> None:
    served = open_dataset("hf:someone/tiny-uncarded:validation")
    assert served.data.table.to_pylist() == open_dataset(parquet(hub, "validation")).data.table.to_pylist()
    assert "GET /api/datasets/someone/tiny-uncarded" in hub.requests  # its commit, asked
    assert hub.unserved_for("someone/tiny-uncarded") == []


def test_an_unknown_hub_dataset_or_split_is_one_line(hub: HubServer) -> None:
    with pytest.raises(ValueError, match=r"^cannot load hf:someone/missing from the Hugging Face Hub: Dataset "
                                         r"'someone/missing' doesn't exist on the Hub") as error:  # fmt: skip
        open_dataset("hf:someone/missing")
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match=r'^cannot load hf:someone/tiny:test from .*: Unknown split "test"'):
        open_dataset("hf:someone/tiny:test")


def test_the_classification_reader_reads_a_hub_dataset_as_its_parquet_file(hub: HubServer) -> None:
    samples, names = scan_labelled("hf:someone/tiny")
    local, local_names = scan_labelled(parquet(hub, "train"))
    assert names == local_names == CLASSES and [label for _, label in samples] == [label for _, label in local]
    assert [image.read_bytes() for image, _ in samples] == [image.read_bytes() for image, _ in local]
    assert str(samples[2][0]) == "hf:someone/tiny/2"
