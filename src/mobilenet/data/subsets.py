"""Parts of a dataset: a seeded validation split, and a few items spread evenly through it."""

from __future__ import annotations

from collections.abc import Sequence
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
