"""Tar shards in webdataset's layout: many samples in a few large files, written once and read in place by offset.

A shard is a plain tar of its samples' files, the files of one sample next to each other under one key
(``n01440764/ILSVRC2012_val_00000293.jpg`` and ``.cls``): the layout webdataset's streaming loaders read. We read
shards by random access instead: one scan of their headers gives every member's offset, and a sample's file is
then one seek and one read. So the trainer's sampler works on shards exactly as on folders (a shuffled order of
its own, a resumed run where it stopped, torchrun's processes each reading the samples of their share).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import tarfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from mobilenet.utils.outputs import OutputRefused

SUFFIX = ".tar"
CLASSES = "classes.txt"  # beside shards of labelled samples: the class names, one a line, in index order
SMALL = 512  # members up to this size (labels, annotations) are read with the scan: no second read per sample


@dataclass(frozen=True, slots=True)  # slots: millions of them, for a set the size of ImageNet
class Member:
    """One file in a shard, read by its offset without unpacking the shard (or held, when it was small)."""

    shard: str
    name: str
    offset: int
    size: int
    data: bytes | None = None

    def read_bytes(self) -> bytes:
        if self.data is not None:
            return self.data
        with open(self.shard, "rb") as file:
            file.seek(self.offset)
            data = file.read(self.size)
        if len(data) != self.size:
            raise OSError(f"{self} is cut short: the shard was truncated after it was scanned")
        return data

    def __str__(self) -> str:
        return f"{self.shard}:{self.name}"


def expand_braces(pattern: str) -> list[str]:
    """A brace pattern as webdataset and bash expand it: ``train-{000..002}.tar`` (zero-padded as written) and
    ``{train,val}.tar``, several braces in one pattern included."""
    found = re.search(r"\{([^{}]*)\}", pattern)
    if found is None:
        return [pattern]
    head, body, tail = pattern[: found.start()], found.group(1), pattern[found.end() :]
    ranged = re.fullmatch(r"(\d+)\.\.(\d+)", body)
    if ranged:
        first, last = ranged.groups()
        items = [f"{number:0{len(first)}d}" for number in range(int(first), int(last) + 1)]
    else:
        items = body.split(",")
    return [name for item in items for name in expand_braces(head + item + tail)]


def is_shards(source: str | Path) -> bool:
    """Whether ``source`` names shards: a ``.tar`` file, a brace pattern of them, or a folder of ``.tar`` files and
    no subfolders (a folder of class folders is not)."""
    text = str(source)
    if text.endswith(SUFFIX) or ("{" in text and "}" in text):
        return True
    path = Path(source)
    if not path.is_dir():
        return False
    entries = list(path.iterdir())
    return any(p.suffix == SUFFIX for p in entries) and not any(p.is_dir() for p in entries)


def shard_paths(source: str | Path) -> list[Path]:
    """The shard files ``source`` names (see :func:`is_shards`), in order; a missing one is an error up front."""
    path = Path(source)
    shards = sorted(path.glob(f"*{SUFFIX}")) if path.is_dir() else [Path(p) for p in expand_braces(str(source))]
    missing = [str(shard) for shard in shards if not shard.is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise FileNotFoundError(f"shard not found: {missing[0]}{more}")
    if not shards:
        raise ValueError(f"{source} names no shards: give a folder of them, a .tar or a pattern like a-{{00..09}}.tar")
    return shards


def shard_classes(shards: Sequence[Path], count: int) -> list[str]:
    """The class names of labels 0..``count - 1``: those of ``classes.txt`` beside the first shard, else the
    indices."""
    names = shards[0].parent / CLASSES
    classes = names.read_text().splitlines() if names.is_file() else [str(index) for index in range(count)]
    if count > len(classes):
        raise ValueError(f"{names} names {len(classes)} classes, but a sample is labelled {count - 1}")
    return classes


def key_and_extension(name: str) -> tuple[str, str]:
    """webdataset's split of a member's name: the key up to the first dot of the file's name, the rest its type."""
    folder, _, base = name.rpartition("/")
    stem, _, extension = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), extension.lower()


def shard_samples(shards: Sequence[Path]) -> Iterator[tuple[str, dict[str, Member]]]:
    """(key, its files by type: ``{"jpg": Member, "cls": Member}``) of every sample in the shards, in order."""
    for shard in shards:
        samples: dict[str, dict[str, Member]] = {}
        path = str(shard)  # one string for all its members
        try:
            with tarfile.open(shard, "r:") as tar:
                for info in tar:
                    if not info.isfile():
                        continue
                    key, extension = key_and_extension(info.name)
                    extracted = tar.extractfile(info) if info.size <= SMALL else None
                    data = extracted.read() if extracted is not None else None
                    member = Member(path, info.name, info.offset_data, info.size, data)
                    samples.setdefault(key, {})[extension] = member
        except (tarfile.TarError, OSError) as error:
            reason = f"{shard} is not a readable tar shard ({error})"
            raise ValueError(f"{reason}: write it again (mobilenet shard)") from None
        yield from samples.items()


class ShardWriter:
    """Samples written into ``folder/shard-000000.tar``, ``-000001``, ... of at most ``max_count`` samples (or
    ``max_bytes``) each: deterministic bytes (no times, owners or modes of the machine), each shard under a hidden
    temporary name until it is complete. ``folder`` is made here and must not exist; used as a context manager, the
    writer removes it when the work fails."""

    def __init__(self, folder: Path, max_count: int = 1000, max_bytes: int = 1 << 30, prefix: str = "shard") -> None:
        folder.mkdir(parents=True)
        self.folder, self.max_count, self.max_bytes, self.prefix = folder, max_count, max_bytes, prefix
        self.tar: tarfile.TarFile | None = None
        self.partial = folder
        self.count = self.bytes = 0
        self.written: list[Path] = []

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, kind: type | None, *_: object) -> None:
        if kind is None:
            self.finish()
        else:
            if self.tar is not None:
                self.tar.close()
            shutil.rmtree(self.folder, ignore_errors=True)

    def add(self, key: str, files: dict[str, bytes]) -> None:
        """One sample: its files by type (``{"jpg": ..., "cls": b"3"}``), written as ``key.type``."""
        if self.tar is None or self.count >= self.max_count or self.bytes >= self.max_bytes:
            self.finish()
            name = f"{self.prefix}-{len(self.written):06d}{SUFFIX}"
            self.partial = self.folder / f".{name}.partial"
            # Closed by finish() or on leaving the context: it spans many calls of add().
            self.tar = tarfile.open(self.partial, "w", format=tarfile.USTAR_FORMAT)  # noqa: SIM115
            self.count = self.bytes = 0
        for extension, data in files.items():
            info = tarfile.TarInfo(f"{key}.{extension}")
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            self.tar.addfile(info, io.BytesIO(data))
            self.bytes += len(data)
        self.count += 1

    def finish(self) -> None:
        """Close the shard being written and give it its name."""
        if self.tar is None:
            return
        self.tar.close()
        self.tar = None
        final = self.folder / self.partial.name[1:].removesuffix(".partial")
        os.replace(self.partial, final)
        self.written.append(final)


@dataclass(frozen=True)
class Sharded:
    """What :func:`write_shards` wrote: the folder, its shards, how many samples, and what they are."""

    out: str
    shards: list[str]
    samples: int
    bytes: int
    what: str  # for people: "images of 3 classes", "images with masks"

    def summary(self) -> str:
        size = f"{self.bytes / 1e6:.1f} MB"
        return f"{self.out}: {self.samples} {self.what} in {len(self.shards)} shards ({size})"


def sample_keys(paths: Sequence[Path], root: Path) -> list[str]:
    """A key per file: its path under ``root`` without the suffix, dots made underscores (a key ends at its first
    dot), and the file's number added where two would be the same (``a.jpg`` and ``a.png``)."""
    keys = [str(path.relative_to(root).with_suffix("")).replace(".", "_") for path in paths]
    counts = Counter(keys)
    return [f"{key}_{number}" if counts[key] > 1 else key for number, key in enumerate(keys)]


def write_shards(
    out: str | Path,
    samples: Iterable[tuple[str, dict[str, bytes]]],
    count: int,
    what: str,
    shard_size: int = 1000,
    beside: dict[str, str] | None = None,
    progress: bool = True,
) -> Sharded:
    """``samples`` (key, files by type; read as they are written) as shards of ``shard_size`` in the new folder
    ``out``, with the text files ``beside`` (name -> text) next to them; ``count`` samples, for the progress bar.
    ``out`` must not exist; if the work fails, nothing of it is left."""
    if shard_size < 1:
        raise ValueError(f"the shard size must be at least 1 sample, got {shard_size}")
    out = Path(out)
    if out.exists():
        raise OutputRefused(f"{out} exists: name a new folder for the shards (nothing is written into or over one)")
    with ShardWriter(out, shard_size) as writer:
        for key, files in tqdm(samples, total=count, unit="img", desc="sharding", disable=not progress):
            writer.add(key, files)
        for name, text in (beside or {}).items():
            (out / name).write_text(text)
    size = sum(shard.stat().st_size for shard in writer.written)
    return Sharded(str(out), [str(shard) for shard in writer.written], count, size, what)
