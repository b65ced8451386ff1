"""Detection data of any layout (COCO JSON, PASCAL VOC, YOLO) written as tar shards (``mobilenet shard --task
detection``), which training and evaluation read in its place.

Each sample is its image file unchanged and a JSON of its boxes as the readers cleaned them (``width``, ``height``,
``boxes`` as xyxy pixels, ``labels`` 0-based); ``classes.txt`` beside the shards names the classes. A set read back
from its shards holds the same records, to the bit.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from mobilenet.data.tars import CLASSES, Sharded, is_shards, sample_keys
from mobilenet.data.tars import write_shards as write_samples
from mobilenet.detection.data import ANNOTATION, detection_dataset


def write_shards(source: str | Path, out: str | Path, shard_size: int = 1000, progress: bool = True) -> Sharded:
    """The records of the detection data at ``source`` (what :func:`detection_dataset` reads) as tar shards in the
    new folder ``out``, ``shard_size`` images each. ``out`` must not exist; if the work fails, nothing is left."""
    if is_shards(source):
        raise ValueError(f"{source} is shards already: give the data they were written from")
    found = detection_dataset(source)
    images = [Path(record.image) for record in found.records]  # files: the source is no shards
    keys = sample_keys(images, Path(os.path.commonpath([image.parent for image in images])) if images else Path())
    files = (
        (key, {
            image.suffix.lower().lstrip("."): image.read_bytes(),
            ANNOTATION: json.dumps({"width": record.width, "height": record.height, "boxes": record.boxes.tolist(),
                                    "labels": record.labels.tolist()}).encode(),
        })
        for key, image, record in zip(keys, images, found.records, strict=True)
    )  # fmt: skip
    boxes = sum(len(record.labels) for record in found.records)
    what = f"images with {boxes} boxes of {len(found.classes)} classes"
    names = "".join(f"{name}\n" for name in found.classes)
    return write_samples(out, files, len(images), what, shard_size, {CLASSES: names}, progress)
