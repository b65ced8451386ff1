"""Detection shards: data of any layout written as images and JSON boxes in webdataset's layout, read back as the
same records, and trained and scored on exactly as the data they came from."""

from __future__ import annotations

import json
import tarfile

import numpy as np
import pytest

from mobilenet.detection.data import detection_dataset
from mobilenet.detection.shards import write_shards
from tests.helpers.data import shared_path
from tests.helpers.runs import assert_trained_and_scored_alike
from tests.helpers.samples import DETECTION_TINY, write_voc_boxes

pytestmark = pytest.mark.usefixtures("one_thread")


def assert_same_records(source, shards) -> None:
    expected, found = detection_dataset(source), detection_dataset(shards)
    assert found.classes == expected.classes and len(found) == len(expected)
    for ours, theirs in zip(found.records, expected.records, strict=True):
        assert ours.image.read_bytes() == theirs.image.read_bytes()
        assert (ours.width, ours.height) == (theirs.width, theirs.height)
        assert ours.boxes.dtype == np.float32 and np.array_equal(ours.boxes, theirs.boxes)
        assert np.array_equal(ours.labels, theirs.labels)


def test_voc_boxes_are_read_back_from_shards_as_the_same_records(tmp_path) -> None:
    voc = write_voc_boxes(tmp_path / "voc", 6, 2)
    written = write_shards(voc, tmp_path / "shards", shard_size=5, progress=False)
    assert (written.samples, len(written.shards)) == (8, 2) and "boxes of 2 classes" in written.what
    with tarfile.open(written.shards[0]) as tar:
        names = tar.getnames()
        assert names[:2] == ["0000.jpg", "0000.json"]
        assert set(json.loads(tar.extractfile("0000.json").read())) == {"width", "height", "boxes", "labels"}
    assert_same_records(voc, tmp_path / "shards")


@pytest.mark.shared
def test_coco128s_json_is_read_back_from_shards_as_the_same_records(tmp_path) -> None:
    coco = shared_path("detection/coco128/instances_val2017_from_yolo.json")
    write_shards(coco, tmp_path / "shards", shard_size=50, progress=False)
    assert_same_records(coco, tmp_path / "shards" / "shard-{000000..000002}.tar")


def test_training_and_scoring_on_shards_are_training_and_scoring_on_the_folder(tmp_path) -> None:
    voc = write_voc_boxes(tmp_path / "voc", 6, 2)
    write_shards(voc, tmp_path / "shards", shard_size=5, progress=False)
    sources = {"folder": voc, "shards": tmp_path / "shards"}
    data = {name: {"data": str(source), "val_data": str(source)} for name, source in sources.items()}
    assert_trained_and_scored_alike(
        tmp_path, {**DETECTION_TINY, "epochs": 1}, data, list(sources.values()), ("map",), 8
    )


def test_bad_detection_shards_are_refused_in_one_line(tmp_path) -> None:
    voc = write_voc_boxes(tmp_path / "voc", 2, 0)
    (tmp_path / "note.json").write_text('{"width": 80, "boxes": []}')
    with tarfile.open(tmp_path / "bad.tar", "w") as tar:
        tar.add(voc / "JPEGImages" / "0000.jpg", "0000.jpg")
        tar.add(tmp_path / "note.json", "0000.json")
    with pytest.raises(ValueError, match=r"bad.tar:0000.json is no annotation of boxes \('height'\): expected"):
        detection_dataset(tmp_path / "bad.tar")
    write_shards(voc, tmp_path / "shards", progress=False)
    with pytest.raises(ValueError, match="is shards already: give the data they were written from"):
        write_shards(tmp_path / "shards", tmp_path / "again", progress=False)
