"""A class-folder set written as tar shards (``mobilenet shard``), which training and evaluation read in its place.

Each sample is its image file unchanged under a key made of its path (``<class>/<stem>.jpg``) and its class index
(``.cls``, as webdataset's classification sets hold it); ``classes.txt`` beside the shards names the classes in
index order. The samples keep the folder's order: a run on the shards sees the batches a run on the folder sees.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from mobilenet.classification.data import CLASSES, scan_folder
from mobilenet.data.tars import ShardWriter
from mobilenet.utils.outputs import OutputRefused


@dataclass(frozen=True)
class Sharded:
    """What :func:`write_shards` wrote: the folder, its shards, and how many images of how many classes."""

    out: str
    shards: list[str]
    samples: int
    classes: int
    bytes: int

    def summary(self) -> str:
        return (
            f"{self.out}: {self.samples} images of {self.classes} classes in {len(self.shards)} shards "
            f"({self.bytes / 1e6:.1f} MB)"
        )


def sample_keys(paths: list[Path], root: Path) -> list[str]:
    """A key per image: its path under ``root`` without the suffix, dots made underscores (a key ends at its first
    dot), and the image's number added where two would be the same (``a.jpg`` and ``a.png``)."""
    keys = [str(path.relative_to(root).with_suffix("")).replace(".", "_") for path in paths]
    counts = Counter(keys)
    return [f"{key}_{number}" if counts[key] > 1 else key for number, key in enumerate(keys)]


def write_shards(source: str | Path, out: str | Path, shard_size: int = 1000, progress: bool = True) -> Sharded:
    """``source/<class>/<image>`` as tar shards in the new folder ``out``, ``shard_size`` images each, in the
    folder's order, with ``classes.txt``. ``out`` must not exist; if the work fails, nothing of it is left."""
    if shard_size < 1:
        raise ValueError(f"the shard size must be at least 1 image, got {shard_size}")
    out = Path(out)
    if out.exists():
        raise OutputRefused(f"{out} exists: name a new folder for the shards (nothing is written into or over one)")
    samples, classes = scan_folder(source)
    keys = sample_keys([path for path, _ in samples], Path(source))
    with ShardWriter(out, shard_size) as writer:
        for key, (path, label) in tqdm(
            zip(keys, samples, strict=True), total=len(samples), unit="img", desc="sharding", disable=not progress
        ):
            writer.add(key, {path.suffix.lower().lstrip("."): path.read_bytes(), "cls": str(label).encode()})
        writer.finish()
        (out / CLASSES).write_text("".join(f"{name}\n" for name in classes))
    size = sum(shard.stat().st_size for shard in writer.written)
    return Sharded(str(out), [str(shard) for shard in writer.written], len(samples), len(classes), size)
