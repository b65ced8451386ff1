"""A class-folder set written as tar shards (``mobilenet shard``), which training and evaluation read in its place.

Each sample is its image file unchanged under a key made of its path (``<class>/<stem>.jpg``) and its class index
(``.cls``, as webdataset's classification sets hold it); ``classes.txt`` beside the shards names the classes in
index order. The samples keep the folder's order: a run on the shards sees the batches a run on the folder sees.
"""

from __future__ import annotations

from pathlib import Path

from mobilenet.classification.data import scan_folder
from mobilenet.data.tars import CLASSES, Sharded, sample_keys
from mobilenet.data.tars import write_shards as write_samples


def write_shards(source: str | Path, out: str | Path, shard_size: int = 1000, progress: bool = True) -> Sharded:
    """``source/<class>/<image>`` as tar shards in the new folder ``out``, ``shard_size`` images each, in the
    folder's order, with ``classes.txt``. ``out`` must not exist; if the work fails, nothing of it is left."""
    samples, classes = scan_folder(source)
    keys = sample_keys([path for path, _ in samples], Path(source))
    files = (
        (key, {path.suffix.lower().lstrip("."): path.read_bytes(), "cls": str(label).encode()})
        for key, (path, label) in zip(keys, samples, strict=True)
    )
    what = f"images of {len(classes)} classes"
    names = "".join(f"{name}\n" for name in classes)
    return write_samples(out, files, len(samples), what, shard_size, {CLASSES: names}, progress)
