"""The trainer's batches: PyTorch's ``DataLoader`` on worker processes, or a pool of threads in the training process.

Both draw the same keys from the same sampler and collate them in the same order, so a run's batches, and its
weights, do not depend on which loads them (tested). Threads copy nothing between processes: where the work runs
outside the GIL (the classifier's JPEG crops: libjpeg-turbo and the resize release it), they deliver more images/s
per core (``benchmarks/loader.py``); a task whose augmentation is mostly Python is better served by processes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler


def threaded_batches(
    dataset: Dataset,
    sampler: Sampler,
    batch_size: int,
    collate: Callable[[Sequence[Any]], tuple],
    threads: int,
    pin: bool = False,
) -> Iterator[tuple]:
    """``collate`` of each ``batch_size`` keys of ``sampler`` in turn, the items loaded by ``threads`` threads that
    work two batches ahead; the inputs (a batch's first tensor) in pinned memory if ``pin``, for copies to a GPU that
    do not wait."""
    keys = iter(sampler)
    with ThreadPoolExecutor(threads, thread_name_prefix="loader") as pool:
        ahead: deque[list[Future]] = deque()

        def submit() -> None:
            chunk = list(islice(keys, batch_size))
            if chunk:
                ahead.append([pool.submit(dataset.__getitem__, key) for key in chunk])

        for _ in range(3):
            submit()
        while ahead:
            futures = ahead.popleft()
            submit()
            batch = collate([future.result() for future in futures])
            yield (batch[0].pin_memory(), *batch[1:]) if pin else batch


def training_batches(
    dataset: Dataset,
    sampler: Sampler,
    batch_size: int,
    collate: Callable[[Sequence[Any]], tuple],
    workers: int,
    loader: str,
    device: torch.device,
    generator: torch.Generator,
) -> Iterator[tuple]:
    """The batches of one epoch: ``workers`` worker processes (``loader="processes"``; 0: loaded in this process), or
    as many threads (``"threads"``)."""
    if loader == "threads" and workers > 0:
        return threaded_batches(dataset, sampler, batch_size, collate, workers, pin=device.type == "cuda")
    return iter(
        DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            collate_fn=collate,
            num_workers=workers,
            pin_memory=device.type == "cuda",
            generator=generator,
        )
    )
