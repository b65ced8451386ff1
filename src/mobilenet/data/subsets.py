"""Parts of a dataset: a seeded validation split, and a few items spread evenly through it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np

Item = TypeVar("Item")


def spread(count: int, length: int) -> list[int]:
    """``count`` indices spread evenly through ``range(length)`` (all of them when there are fewer): a sample of a
    sorted set that gives every part of it (every class of a class-per-folder set, say) a share."""
    taken = min(count, length)
    return [i * length // taken for i in range(taken)]


def split_fraction(
    items: Sequence[Item], fraction: float, seed: int, labels: Sequence[int] | None = None
) -> tuple[list[Item], list[Item]]:
    """A seeded split into (train, validation): ``fraction`` of the items (at least one) for validation, of every
    label's items when ``labels`` are given (stratified), in the seeded order."""
    if not 0 < fraction < 1:
        raise ValueError(f"the validation fraction must be in (0, 1), got {fraction}")
    labels = [0] * len(items) if labels is None else list(labels)
    rng = np.random.default_rng(seed)
    train: list[Item] = []
    val: list[Item] = []
    for label in sorted(set(labels)):
        members = [item for item, of in zip(items, labels, strict=True) if of == label]
        order = rng.permutation(len(members))
        cut = max(1, round(len(members) * fraction))
        val += [members[i] for i in order[:cut]]
        train += [members[i] for i in order[cut:]]
    return train, val


VALIDATION = ("val", "validation", "test")  # a split's folder for validation, the first there is


def split_folders(root: str | Path) -> tuple[Path, Path] | None:
    """A dataset's own training and validation parts: its ``train/`` folder beside ``val/`` (or a Hugging Face
    dataset's saved ``validation`` or else ``test`` split), or None."""
    root = Path(root)
    if not (root / "train").is_dir():
        return None
    val = next((root / name for name in VALIDATION if (root / name).is_dir()), None)
    return None if val is None else (root / "train", val)
