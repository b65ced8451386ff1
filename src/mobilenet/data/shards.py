"""A dataset scored by every process of a run: each reads its share, and the counts are summed across them.

Under ``torch.distributed`` (torchrun) process ``rank`` of ``world`` takes items ``rank, rank + world, ...``;
alone, a process takes all. Every task's evaluation loops over :func:`batches` and sums with :func:`summed`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of processes (0 and 1 outside ``torch.distributed``)."""
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def batches(
    dataset: Dataset, batch_size: int, workers: int, collate: Callable[[list], Any], desc: str, progress: bool = False
) -> Iterator[Any]:
    """This process's share of ``dataset``, in batches made by ``collate``, with a progress bar if asked.

    The loader draws from a generator of its own, so that scoring leaves the global RNG (dropout's) untouched.
    """
    rank, world = rank_and_world()
    share = Subset(dataset, range(rank, len(dataset), world))  # type: ignore[arg-type]
    loader = DataLoader(
        share, batch_size=batch_size, num_workers=workers, collate_fn=collate, generator=torch.Generator()
    )
    yield from tqdm(loader, desc=desc, unit="batch", disable=not progress, leave=False)


def summed(*counts: torch.Tensor) -> None:
    """Sum each tensor of counts over every process, in place."""
    if dist.is_initialized():
        for count in counts:
            dist.all_reduce(count)


def gathered(share: Any) -> list[Any]:
    """Every process's ``share`` (any picklable object), in rank order."""
    if not dist.is_initialized():
        return [share]
    shares: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(shares, share)
    return shares
