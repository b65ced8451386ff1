"""How the trainer draws samples: a seeded, resumable, rank-sharded order of (index, augmentation seed).

Augmentation is seeded per sample from (run seed, epoch, index), so a sample looks the same whichever
worker process loads it and whether or not the run was interrupted: that is what makes a resumed run
equal to an uninterrupted one. Every task's training dataset is indexed by ``(index, seed)``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A well-mixed seed for one sample's augmentation in one epoch."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


class ShardedSampler(Sampler[tuple[int, int]]):
    """A seeded per-epoch permutation, cut into global batches, each split in contiguous rank shards.

    Rank ``r`` of ``world`` takes items ``[r*b, (r+1)*b)`` of every global batch of ``world*b``, so a
    run on N processes sees the same micro-batches as one process accumulating N of them. Incomplete
    global batches are dropped; ``start`` skips the batches already trained on when resuming.
    """

    def __init__(
        self, size: int, micro_batch: int, seed: int, epoch: int = 0, rank: int = 0, world: int = 1, start: int = 0
    ) -> None:
        self.size, self.micro_batch, self.seed, self.epoch = size, micro_batch, seed, epoch
        self.rank, self.world, self.start = rank, world, start

    def batches_per_epoch(self) -> int:
        return self.size // (self.micro_batch * self.world)

    def __len__(self) -> int:
        return (self.batches_per_epoch() - self.start) * self.micro_batch

    def __iter__(self) -> Iterator[tuple[int, int]]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.size, generator=generator).tolist()
        global_batch = self.micro_batch * self.world
        for batch in range(self.start, self.batches_per_epoch()):
            first = batch * global_batch + self.rank * self.micro_batch
            for index in order[first : first + self.micro_batch]:
                yield index, sample_seed(self.seed, self.epoch, index)
