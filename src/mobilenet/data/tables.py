"""Hugging Face ``datasets`` as data: a folder that ``save_to_disk`` wrote, Arrow or Parquet files, or a Hub name.

A table is opened by ``datasets`` itself (Parquet is converted once into its Arrow cache, as ``load_dataset`` does),
then read in place: the Arrow table is memory-mapped, so a row's image is its encoded bytes, taken by random access
without decoding the others. A :class:`Row` stands for one row's image (or mask) wherever a file or a shard's member
can, so the trainer's sampler, exact resume and torchrun read tables as they read folders.

Columns are found by their ``datasets`` features: images are ``Image`` features, class labels ``ClassLabel`` ones
(an integer ``label`` column without names is taken too), as the Hub's datasets declare them.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import accumulate
from pathlib import Path
from typing import Any

SUFFIXES = (".parquet", ".arrow")
HUB = "hf:"  # hf:NAME or hf:NAME:SPLIT, a dataset of the Hugging Face Hub (its train split unless named)
SAVED = ("dataset_info.json", "state.json")  # the files of one split that ``save_to_disk`` wrote
SPLITS = "dataset_dict.json"  # a folder of splits that ``DatasetDict.save_to_disk`` wrote


def is_table(source: str | Path) -> bool:
    """Whether ``source`` names a table: a Hub name (``hf:NAME``), a ``.parquet`` or ``.arrow`` file, a folder that
    ``datasets`` saved (one split or several), or a folder of Parquet files."""
    text = str(source)
    if text.startswith(HUB) or text.endswith(SUFFIXES):
        return True
    path = Path(source)
    return path.is_dir() and (is_saved(path) or (path / SPLITS).is_file() or any(path.glob("*.parquet")))


def is_saved(folder: Path) -> bool:
    """Whether ``folder`` holds one split as ``save_to_disk`` writes it."""
    return all((folder / name).is_file() for name in SAVED)


def split_names(source: str | Path) -> list[str]:
    """The splits of a folder that ``DatasetDict.save_to_disk`` wrote (``train``, ``validation``, ...); none else."""
    path = Path(source)
    if str(source).startswith(HUB) or not (path / SPLITS).is_file():
        return []
    return sorted(part.name for part in path.iterdir() if part.is_dir() and is_saved(part))


def open_dataset(source: str | Path) -> Any:
    """The ``datasets.Dataset`` that ``source`` names (see :func:`is_table`), or a one-line error."""
    try:
        import datasets
    except ImportError:
        raise ImportError(f"{source} is a Hugging Face dataset: pip install 'mobilenet[datasets]' to read it") from None
    text = str(source)
    if text.startswith(HUB):
        name, _, split = text[len(HUB) :].partition(":")
        try:
            return datasets.load_dataset(name, split=split or "train")
        except Exception as error:  # the Hub's errors are many (network, name, split): one line
            raise ValueError(f"cannot load {text} from the Hugging Face Hub: {str(error).splitlines()[0]}") from None
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"dataset not found: {path}")
    if splits := split_names(path):
        raise ValueError(f"{path} holds the splits {', '.join(splits)}: pass one of them ({path / splits[0]})")
    try:
        if path.suffix == ".arrow":
            return datasets.Dataset.from_file(str(path))
        if path.is_dir() and is_saved(path):
            return datasets.load_from_disk(str(path))
        files = sorted(str(part) for part in path.glob("*.parquet")) if path.is_dir() else [str(path)]
        return datasets.load_dataset("parquet", data_files=files, split="train")
    except Exception as error:  # Arrow's and datasets' errors are many (a truncated file, a foreign one): one line
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"cannot read {path} as a Hugging Face dataset ({reason}): is it complete?") from None


class Table:
    """A dataset opened once, whose rows are read in place: its images as encoded bytes, its columns as values.

    Pickled as its source and reopened on first use (``datasets`` memory-maps the same files again), so a worker
    process or a Ray task receives a few bytes, never the table."""

    def __init__(self, source: str | Path) -> None:
        self.source = str(source)

    def __getstate__(self) -> dict[str, str]:
        return {"source": self.source}

    def __setstate__(self, state: dict[str, str]) -> None:
        self.source = state["source"]

    @cached_property
    def dataset(self) -> Any:
        return open_dataset(self.source)

    @cached_property
    def batches(self) -> tuple[list[Any], list[int]]:
        """The memory-mapped record batches (not copied) and the first row of each."""
        batches = self.dataset.data.table.to_batches()
        return batches, list(accumulate((len(batch) for batch in batches[:-1]), initial=0))

    def __len__(self) -> int:
        return len(self.dataset)

    def columns_of(self, feature: str) -> list[str]:
        """The columns whose ``datasets`` feature is of type ``feature`` (``"Image"``, ``"ClassLabel"``), in order."""
        return [name for name, kind in self.dataset.features.items() if type(kind).__name__ == feature]

    def image_column(self, preferred: Sequence[str] = ("image", "img", "pixel_values")) -> str:
        """The column of the images: one of ``preferred`` names that is an ``Image`` feature, else the first."""
        images = self.columns_of("Image")
        if not images:
            columns = ", ".join(self.dataset.column_names)
            raise ValueError(f"{self.source} has no column of images (its columns: {columns}): an image column is a "
                             "datasets Image feature")  # fmt: skip
        return next((name for name in preferred if name in images), images[0])

    def rows(self, column: str) -> list[Row]:
        """A :class:`Row` for each row's image in ``column``, in order."""
        return [Row(self, column, index) for index in range(len(self))]

    def values(self, column: str) -> list[Any]:
        """Every value of ``column`` as Python objects, in order (labels, annotations: not images)."""
        return self.dataset.data.table.column(column).to_pylist()

    def image_bytes(self, column: str, index: int) -> bytes:
        """The encoded image of row ``index`` in ``column``: its bytes, or the file its path names."""
        batches, starts = self.batches
        batch = bisect_right(starts, index) - 1
        cell = batches[batch].column(column)[index - starts[batch]]
        data = cell["bytes"].as_py()
        if data is None and cell["path"].as_py():
            return Path(cell["path"].as_py()).read_bytes()
        if data is None:
            raise ValueError(f"row {index} of {self.source} has no image in {column}")
        return data


@dataclass(frozen=True, slots=True)  # slots: one per row, millions of them
class Row:
    """One row's image (or mask) of a table, read in place: it goes wherever an image file or a shard's member goes."""

    table: Table
    column: str
    index: int

    def read_bytes(self) -> bytes:
        return self.table.image_bytes(self.column, self.index)

    def __str__(self) -> str:
        return f"{self.table.source}/{self.index}"  # its name in results: the row's number as if a file's
