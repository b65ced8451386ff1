"""The real data in ../shared (or ``$MOBILENET_SHARED``), and small image sets made on the spot."""

from __future__ import annotations

import io
import lzma
import os
from pathlib import Path

import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("MOBILENET_SHARED", ROOT.parent / "shared"))


def shared_path(relative: str) -> Path:
    """A path under ../shared/data, or a skip that says what is missing and why."""
    path = SHARED / "data" / relative
    if not path.exists():
        pytest.skip(f"needs {path}: the real data in ../shared (set MOBILENET_SHARED to point elsewhere)")
    return path


def tensorflow_files(folder: Path) -> Path:
    """``tests/data/tf_slim`` unpacked into ``folder``: TF-slim and DeepLab checkpoints and frozen graphs as
    TensorFlow wrote them (see ``benchmarks/tf_slim_reference.py``), with ``reference.npz``, TensorFlow's outputs."""
    for path in (ROOT / "tests" / "data" / "tf_slim").iterdir():
        if path.suffix == ".xz":  # the data shards and graphs are stored xz-compressed
            (folder / path.stem).write_bytes(lzma.decompress(path.read_bytes()))
        else:
            (folder / path.name).write_bytes(path.read_bytes())
    return folder


def write_images(folder: Path, count: int, size: tuple[int, int] = (48, 40)) -> None:
    """``count`` JPEGs of random pixels in ``folder``, the same for the same folder name."""
    folder.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(len(str(folder)))
    for i in range(count):
        pixels = (torch.rand(size[1], size[0], 3, generator=generator) * 255).byte().numpy()
        Image.fromarray(pixels).save(folder / f"{i}.jpg")


def png_bytes(height: int, width: int, seed: int = 0) -> bytes:
    """A PNG of random pixels, the same for the same seed."""
    generator = torch.Generator().manual_seed(seed)
    pixels = (torch.rand(height, width, 3, generator=generator) * 255).byte().numpy()
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def saved_dataset(folder: Path, splits: dict[str, dict[str, list]], features: dict) -> Path:
    """A Hugging Face dataset as ``DatasetDict.save_to_disk`` writes it: one split per entry of ``splits`` (columns
    of values; image columns as file paths, whose bytes ``datasets`` embeds), of the ``features`` given."""
    import datasets

    typed = datasets.Features(features)
    parts = {name: datasets.Dataset.from_dict(columns, features=typed) for name, columns in splits.items()}
    datasets.DatasetDict(parts).save_to_disk(str(folder))
    return folder
