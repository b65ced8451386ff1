"""Timing that survives a noisy machine: interleaved rounds in a random order, medians, thread control."""

from __future__ import annotations

import contextlib
import random
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from tqdm import tqdm

Runner = Callable[[torch.Tensor], Any]
PAUSE_S = 0.2  # between paths: longer than any runtime's spin-wait (OpenMP's default is 200 ms at most)


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """PyTorch's intra-op thread count set for a block, then restored."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def time_paths(
    paths: Sequence[Runner],
    inputs: Sequence[tuple[torch.Tensor, torch.Tensor | None]],
    rounds: int,
    calls: int,
    progress: bool = False,
) -> list[tuple[list[float], list[float]]]:
    """Per path: every batch-1 latency (s), and the images/s of each round at its batch (if given).

    ``inputs[i]`` is path i's (batch of one, larger batch or None). Interleaved: each round runs every
    path in turn, so that load from other processes hits all alike, in a fresh random order each round
    (seeded): no path always runs first, or always follows the same neighbour.
    """
    for run, (one, many) in zip(paths, inputs, strict=True):  # warm-up (and compilation) outside the rounds
        run(one)
        if many is not None:
            run(many)
    samples: list[tuple[list[float], list[float]]] = [([], []) for _ in paths]
    jobs = list(zip(paths, inputs, samples, strict=True))
    order = random.Random(0)
    for _ in tqdm(range(rounds), desc="timing", unit="round", disable=not progress):
        for run, (one, many), (latencies, throughputs) in order.sample(jobs, len(jobs)):
            # The previous path's thread pool (OpenMP, ONNX Runtime, OpenVINO) spin-waits for a while after
            # its last call, stealing the cores: let it go to sleep, then one untimed call warms this path.
            time.sleep(PAUSE_S)
            run(one)
            for _ in range(calls):
                start = time.perf_counter()
                run(one)
                latencies.append(time.perf_counter() - start)
            if many is not None:
                start = time.perf_counter()
                for _ in range(3):
                    run(many)
                throughputs.append(3 * len(many) / (time.perf_counter() - start))
    return samples


def median_and_p90(latencies: list[float]) -> tuple[float, float]:
    """Median and 90th percentile, in milliseconds."""
    p90 = statistics.quantiles(latencies, n=10)[8] if len(latencies) > 1 else latencies[0]
    return statistics.median(latencies) * 1e3, p90 * 1e3
