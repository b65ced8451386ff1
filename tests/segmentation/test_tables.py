"""Hugging Face datasets of images and masks (two Image columns, as the Hub's segmentation sets): read as the pairs of
the VOC folders they were made from, trained and scored on exactly as those folders are."""

from __future__ import annotations

import pytest

from mobilenet.segmentation.data import pairs_of, voc_pairs
from tests.helpers.data import saved_dataset
from tests.helpers.runs import assert_trained_and_scored_alike
from tests.helpers.samples import SEGMENTATION_TINY, write_voc_masks

datasets = pytest.importorskip("datasets")


def test_training_and_scoring_on_a_dataset_are_training_and_scoring_on_the_folders(tmp_path) -> None:
    voc = tmp_path / "voc"
    write_voc_masks(voc / "train", 12, seed=0)
    write_voc_masks(voc / "val", 4, seed=1)
    splits = {split: {"image": [str(image) for image, _ in voc_pairs(voc / split)],
                      "annotation": [str(mask) for _, mask in voc_pairs(voc / split)]}
              for split in ("train", "val")}  # fmt: skip
    saved_dataset(tmp_path / "hf", splits, {"image": datasets.Image(), "annotation": datasets.Image()})
    pairs = pairs_of(tmp_path / "hf" / "val")
    assert [(i.read_bytes(), m.read_bytes()) for i, m in pairs] == [
        (i.read_bytes(), m.read_bytes()) for i, m in voc_pairs(voc / "val")
    ]
    data = {"folders": {"data": str(voc)}, "dataset": {"data": str(tmp_path / "hf")}}
    scored = [voc / "val", tmp_path / "hf" / "val"]
    assert_trained_and_scored_alike(tmp_path, {**SEGMENTATION_TINY, "epochs": 1}, data, scored, ("miou",), 4)


def test_a_dataset_of_one_image_column_is_refused_in_one_line(tmp_path) -> None:
    voc = write_voc_masks(tmp_path / "voc", 2, seed=0)
    images = [str(image) for image, _ in voc_pairs(voc)]
    saved_dataset(tmp_path / "hf", {"train": {"image": images}}, {"image": datasets.Image()})
    with pytest.raises(ValueError, match=r"has one column of images \(image\): a segmentation dataset has a second"):
        pairs_of(tmp_path / "hf" / "train")
