"""Segmentation shards: a VOC folder's image-mask pairs written unchanged in webdataset's layout, and trained and
scored on exactly as the folder is."""

from __future__ import annotations

import tarfile

import pytest
import torch

from mobilenet.segmentation.data import pairs_of, segmentation_dataset, voc_pairs
from mobilenet.segmentation.shards import write_shards
from tests.helpers.runs import assert_trained_and_scored_alike, cli
from tests.helpers.samples import SEGMENTATION_TINY, write_voc_masks

pytestmark = pytest.mark.usefixtures("one_thread")


def test_pairs_are_written_unchanged_and_read_back_as_the_folders(tmp_path) -> None:
    voc = write_voc_masks(tmp_path / "voc", 5, seed=0)
    written = write_shards(voc, tmp_path / "shards", shard_size=2, progress=False)
    assert (written.samples, len(written.shards)) == (5, 3)
    with tarfile.open(written.shards[0]) as tar:
        assert tar.getnames() == ["0000.jpg", "0000.seg.png", "0001.jpg", "0001.seg.png"]
    folder, shards = voc_pairs(voc), pairs_of(tmp_path / "shards")
    assert [(i.read_bytes(), m.read_bytes()) for i, m in folder] == [
        (i.read_bytes(), m.read_bytes()) for i, m in shards
    ]
    for (image, mask), (expected_image, expected_mask) in zip(segmentation_dataset(tmp_path / "shards"),
                                                              segmentation_dataset(voc), strict=True):  # fmt: skip
        assert image.tobytes() == expected_image.tobytes() and torch.equal(mask, expected_mask)


def test_training_and_scoring_on_shards_are_training_and_scoring_on_the_folders(tmp_path) -> None:
    voc = tmp_path / "voc"
    write_voc_masks(voc / "train", 12, seed=0)
    write_voc_masks(voc / "val", 4, seed=1)
    for split in ("train", "val"):
        write_shards(voc / split, tmp_path / "shards" / split, shard_size=5, progress=False)
    data = {"folders": {"data": str(voc)}, "shards": {"data": str(tmp_path / "shards")}}
    scored = [voc / "val", tmp_path / "shards" / "val" / "shard-000000.tar"]
    assert_trained_and_scored_alike(tmp_path, {**SEGMENTATION_TINY, "epochs": 1}, data, scored, ("miou",), 4)


def test_a_shard_without_masks_is_refused_in_one_line(tmp_path) -> None:
    voc = write_voc_masks(tmp_path / "voc", 2, seed=0)
    with tarfile.open(tmp_path / "images.tar", "w") as tar:
        tar.add(voc / "JPEGImages" / "0000.jpg", "0000.jpg")
    with pytest.raises(ValueError, match=r"sample 0000 of .* has jpg: a segmentation shard holds an image and a"):
        segmentation_dataset(tmp_path / "images.tar")
    done = cli("shard", "--task", "segmentation", str(voc), str(tmp_path / "out"))
    assert done.returncode == 0 and "2 images with masks in 1 shards" in done.stdout, done.stderr
