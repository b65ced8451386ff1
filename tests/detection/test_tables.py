"""Hugging Face detection datasets as the Hub lays them out (an image column, objects of COCO [x, y, w, h] boxes and
class labels): read as the records of the data they were made from, trained and scored on exactly as that data."""

from __future__ import annotations

import numpy as np
import pytest

from mobilenet.detection.data import detection_dataset
from tests.helpers.data import saved_dataset
from tests.helpers.runs import assert_trained_and_scored_alike
from tests.helpers.samples import DETECTION_TINY, write_voc_boxes

pytestmark = pytest.mark.usefixtures("one_thread")
datasets = pytest.importorskip("datasets")


def hub_layout(found, sized: bool, listed: bool) -> tuple[dict, dict]:
    """A detection set's records as the Hub's columns: ``objects`` a dict of lists (``Sequence``) or a list of dicts
    (``List``), with or without ``width`` and ``height`` columns."""
    objects = [{"bbox": [[x0, y0, x1 - x0, y1 - y0] for x0, y0, x1, y1 in record.boxes.tolist()],
                "category": record.labels.tolist()} for record in found.records]  # fmt: skip
    fields = {"bbox": datasets.Sequence(datasets.Value("float32"), length=4),
              "category": datasets.ClassLabel(names=found.classes)}  # fmt: skip
    if listed:
        objects = [[dict(zip(row, each, strict=True)) for each in zip(*row.values(), strict=True)] for row in objects]
        fields = datasets.List(fields)
    else:
        fields = datasets.Sequence(fields)
    columns = {"image": [str(record.image) for record in found.records], "objects": objects}
    features = {"image": datasets.Image(), "objects": fields}
    if sized:
        columns |= {"width": [r.width for r in found.records], "height": [r.height for r in found.records]}
        features |= {"width": datasets.Value("int32"), "height": datasets.Value("int32")}
    return columns, features


def test_training_and_scoring_on_a_dataset_are_training_and_scoring_on_the_folder(tmp_path) -> None:
    voc = write_voc_boxes(tmp_path / "voc", 6, 2)
    found = detection_dataset(voc)
    for sized, listed in ((True, False), (False, True)):
        columns, features = hub_layout(found, sized, listed)
        saved_dataset(tmp_path / f"hf-{sized}", {"train": columns}, features)
        table = detection_dataset(tmp_path / f"hf-{sized}" / "train")
        assert table.classes == found.classes and len(table) == len(found) == 8
        for ours, theirs in zip(table.records, found.records, strict=True):
            assert ours.image.read_bytes() == theirs.image.read_bytes()
            assert (ours.width, ours.height) == (theirs.width, theirs.height)
            assert np.array_equal(ours.boxes, theirs.boxes) and np.array_equal(ours.labels, theirs.labels)
    sources = {"folder": voc, "dataset": tmp_path / "hf-True" / "train"}
    data = {name: {"data": str(source), "val_data": str(source)} for name, source in sources.items()}
    assert_trained_and_scored_alike(
        tmp_path, {**DETECTION_TINY, "epochs": 1}, data, list(sources.values()), ("map",), 8
    )


def test_a_dataset_without_objects_is_refused_in_one_line(tmp_path) -> None:
    voc = write_voc_boxes(tmp_path / "voc", 2, 0)
    images = [str(record.image) for record in detection_dataset(voc).records]
    saved_dataset(tmp_path / "hf", {"train": {"image": images}}, {"image": datasets.Image()})
    with pytest.raises(ValueError, match=r"has no 'objects' column \(its columns: image\)"):
        detection_dataset(tmp_path / "hf" / "train")
