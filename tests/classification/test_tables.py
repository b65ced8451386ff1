"""Hugging Face datasets of labelled images: a saved DatasetDict, Parquet and Arrow files read as the samples of the
class folders they were made from, trained and scored on exactly as those folders are, and predicted on by name."""

from __future__ import annotations

import pickle

import pytest

from mobilenet.classification.data import scan_folder, scan_labelled
from mobilenet.data.images import image_files
from mobilenet.data.tables import Table, is_table
from tests.classification.test_shards import class_folder
from tests.helpers.data import saved_dataset
from tests.helpers.runs import TINY, assert_trained_and_scored_alike

datasets = pytest.importorskip("datasets")


def dataset_of(folders: dict, root) -> None:
    """The class folders of each split as one saved DatasetDict at ``root``: an image and a ClassLabel column."""
    splits, names = {}, None
    for split, folder in folders.items():
        samples, names = scan_folder(folder)
        splits[split] = {"img": [str(path) for path, _ in samples], "label": [label for _, label in samples]}
    features = {"img": datasets.Image(), "label": datasets.ClassLabel(names=names)}
    saved_dataset(root, splits, features)


def test_a_saved_dataset_and_its_parquet_are_the_folders_samples(tmp_path) -> None:
    source = class_folder(tmp_path / "source")
    dataset_of({"train": source}, tmp_path / "hf")
    datasets.load_from_disk(str(tmp_path / "hf" / "train")).to_parquet(str(tmp_path / "train.parquet"))
    files, classes = scan_folder(source)
    arrow = next((tmp_path / "hf" / "train").glob("*.arrow"))
    for given in (tmp_path / "hf" / "train", tmp_path / "train.parquet", arrow):
        assert is_table(given)
        samples, names = scan_labelled(given)
        assert names == classes and [label for _, label in samples] == [label for _, label in files]
        assert [row.read_bytes() for row, _ in samples] == [path.read_bytes() for path, _ in files]
    assert str(samples[3][0]).endswith(".arrow/3") and len(image_files([str(arrow)])) == 21
    with pytest.raises(ValueError, match=r"holds the splits train: pass one of them \(.*hf/train\)"):
        scan_labelled(tmp_path / "hf")
    assert not is_table(source)
    table = Table(tmp_path / "hf" / "train")
    assert len(table) == 21 and len(pickle.dumps(table)) < 300  # a worker gets its path, not its rows


def test_training_and_scoring_on_a_dataset_are_training_and_scoring_on_the_folders(tmp_path) -> None:
    folders = {"train": class_folder(tmp_path / "train", per_class=8), "validation": class_folder(tmp_path / "val", 3)}
    dataset_of(folders, tmp_path / "hf")
    settings = {**TINY, "epochs": 1, "batch_size": 8, "input_size": 32, "workers": 1}  # a worker: the table pickled
    data = {"folders": {"data": str(folders["train"]), "val_data": str(folders["validation"])},
            "dataset": {"data": str(tmp_path / "hf")}}  # fmt: skip
    scored = [folders["validation"], tmp_path / "hf" / "validation"]
    assert_trained_and_scored_alike(tmp_path, settings, data, scored, ("top1", "confusion"), 9)


def test_a_dataset_without_images_or_labels_is_refused_in_one_line(tmp_path) -> None:
    saved_dataset(tmp_path / "text", {"train": {"text": ["a", "b"], "label": [0, 1]}},
                  {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["x", "y"])})  # fmt: skip
    with pytest.raises(ValueError, match=r"text/train has no column of images \(its columns: text, label\)"):
        scan_labelled(tmp_path / "text" / "train")
    source = class_folder(tmp_path / "source", per_class=1)
    files = [str(path) for path in sorted(source.rglob("*.jpg"))]
    saved_dataset(tmp_path / "unlabelled", {"train": {"image": files}}, {"image": datasets.Image()})
    with pytest.raises(ValueError, match="has no column of class labels"):
        scan_labelled(tmp_path / "unlabelled" / "train")
    with pytest.raises(FileNotFoundError, match="dataset not found"):
        scan_labelled(tmp_path / "missing.parquet")
    (tmp_path / "cut.parquet").write_bytes(b"PAR1 and nothing else")
    with pytest.raises(ValueError, match=r"cannot read .*cut\.parquet as a Hugging Face dataset \(.*\): is it"):
        scan_labelled(tmp_path / "cut.parquet")
