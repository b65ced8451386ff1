"""A VOC folder written as tar shards (``mobilenet shard --task segmentation``), which training and evaluation read in
its place.

Each sample is its image file and its mask file, both unchanged, under the image's id: ``2007_000032.jpg`` and
``2007_000032.seg.png`` (the palette PNG of class indices, 255 the void border). The pairs keep the folder's order
(its ``ids.txt`` where it has one).
"""

from __future__ import annotations

from pathlib import Path

from mobilenet.data.tars import Sharded, sample_keys
from mobilenet.data.tars import write_shards as write_samples
from mobilenet.segmentation.data import MASK, voc_pairs


def write_shards(source: str | Path, out: str | Path, shard_size: int = 1000, progress: bool = True) -> Sharded:
    """The image-mask pairs of the VOC folder ``source`` (``JPEGImages/``, ``SegmentationClass/``) as tar shards in
    the new folder ``out``, ``shard_size`` pairs each. ``out`` must not exist; if the work fails, nothing is left."""
    pairs = voc_pairs(source)
    keys = sample_keys([image for image, _ in pairs], Path(source) / "JPEGImages")
    files = (
        (key, {image.suffix.lower().lstrip("."): image.read_bytes(), MASK: mask.read_bytes()})
        for key, (image, mask) in zip(keys, pairs, strict=True)
    )
    return write_samples(out, files, len(pairs), "images with masks", shard_size, progress=progress)
