"""Dynamic batching: requests that arrive together are run as one batch, on a bounded queue.

A batch holds at most ``max_batch`` requests. While the model runs a batch, the requests that arrive meanwhile queue
up and make the next one, so a busy server runs large batches without waiting at all; and a batch waits at most
``max_wait`` seconds for requests that are on their way (admitted, their uploads still being read or decoded), and
not at all when none is, so that a lone request is not held back for companions that are not coming.

The queue holds at most ``max_queue`` requests: one more is refused at once (:class:`Overloaded`), so that overload
is answered in milliseconds instead of piling up. A request holds its place from its arrival, while its upload is
read and decoded, so the bound is on all the work in hand. A request whose client left before its batch was formed
(its future cancelled) is dropped from the batch, never run.

Each worker owns one runner (a deployed model is not thread-safe) and one thread to run it on, so the event loop
stays free to take requests while batches run.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

RunBatch = Callable[[list[Any]], list[Any]]  # one worker's: inputs -> one result each, in order


class Overloaded(Exception):
    """The queue is full: the request is refused at once (HTTP 503 with Retry-After)."""


@dataclass(frozen=True)
class BatchDone:
    """One batch run: its size and how long the model took (seconds)."""

    size: int
    seconds: float


@dataclass
class Waiting:
    item: Any
    future: asyncio.Future


class Batcher:
    """Gathers submitted items into batches for ``runners`` (one per worker: each runs one batch at a time).

    Args:
        runners: one ``RunBatch`` per worker.
        max_batch: the largest batch.
        max_wait: how long (seconds) the first item of a batch waits for others to join it.
        max_queue: the most items waiting; one more is refused with :class:`Overloaded`.
        on_batch: called (on the event loop) after each batch with what it did: the server's metrics.
    """

    def __init__(
        self,
        runners: Sequence[RunBatch],
        max_batch: int,
        max_wait: float,
        max_queue: int,
        on_batch: Callable[[BatchDone], None] | None = None,
    ) -> None:
        if not runners:
            raise ValueError("a batcher needs at least one runner")
        if max_batch < 1 or max_queue < 1 or max_wait < 0:
            raise ValueError(
                f"max_batch and max_queue must be >= 1 and max_wait >= 0, got {max_batch}, {max_queue}, {max_wait}"
            )
        self.runners, self.max_batch, self.max_wait, self.max_queue = list(runners), max_batch, max_wait, max_queue
        self.on_batch = on_batch
        self.waiting: asyncio.Queue[Waiting] | None = None
        self.arrived: asyncio.Event | None = None
        self.admitted = 0
        self.tasks: list[asyncio.Task] = []
        self.threads: list[ThreadPoolExecutor] = []

    @property
    def depth(self) -> int:
        """Requests in hand: admitted and not yet submitted (their uploads being read and decoded), and those waiting
        for a batch."""
        return self.admitted + (0 if self.waiting is None else self.waiting.qsize())

    @property
    def full(self) -> bool:
        return self.depth >= self.max_queue

    async def start(self) -> None:
        """Start the workers on the running event loop."""
        self.waiting, self.arrived = asyncio.Queue(), asyncio.Event()
        for number, runner in enumerate(self.runners):
            thread = ThreadPoolExecutor(1, thread_name_prefix=f"batch-worker-{number}")
            self.threads.append(thread)
            self.tasks.append(asyncio.create_task(self.work(runner, thread)))

    async def stop(self) -> None:
        """Stop the workers; what still waits is cancelled."""
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        while self.waiting is not None and not self.waiting.empty():
            self.waiting.get_nowait().future.cancel()
        for thread in self.threads:
            thread.shutdown(wait=True)
        self.tasks, self.threads = [], []

    @contextlib.contextmanager
    def admission(self) -> Iterator[Callable[[Any], asyncio.Future]]:
        """A place in the queue from a request's arrival, before its upload is read and decoded, until its item is
        submitted (with the function this yields) or the request fails: the queue bounds all the work in hand, so
        that a request over it is refused before it costs anything. Refused (:class:`Overloaded`) when full."""
        if self.full:
            raise Overloaded(f"{self.depth} requests are in hand, the most this server queues")
        self.admitted += 1
        held = True

        def submit(item: Any) -> asyncio.Future:
            nonlocal held
            self.admitted, held = self.admitted - 1, False
            return self.submit(item)

        try:
            yield submit
        finally:
            if held:
                self.admitted -= 1

    def submit(self, item: Any) -> asyncio.Future:
        """Queue ``item``; the future gets its result (or the batch's exception). Refused when the queue is full."""
        if self.waiting is None or self.arrived is None:
            raise RuntimeError("the batcher is not started")
        if self.full:
            raise Overloaded(f"{self.depth} requests are in hand, the most this server queues")
        future = asyncio.get_running_loop().create_future()
        self.waiting.put_nowait(Waiting(item, future))
        self.arrived.set()
        return future

    async def gather(self) -> list[Waiting]:
        """The next batch: the first item waited for, those queued, then those on their way that join within
        ``max_wait``, up to ``max_batch``; items whose clients left are dropped."""
        assert self.waiting is not None and self.arrived is not None
        batch = [await self.waiting.get()]
        deadline = time.perf_counter() + self.max_wait
        while len(batch) < self.max_batch:
            while len(batch) < self.max_batch and not self.waiting.empty():
                batch.append(self.waiting.get_nowait())
            left = deadline - time.perf_counter()
            if len(batch) >= self.max_batch or left <= 0 or not self.admitted:
                break
            self.arrived.clear()
            # An event, not the queue, is waited on with a timeout: no item is lost to a timed-out get.
            with contextlib.suppress(asyncio.TimeoutError):  # TimeoutError itself from Python 3.11
                await asyncio.wait_for(self.arrived.wait(), left)
        return [waiting for waiting in batch if not waiting.future.cancelled()]

    async def work(self, runner: RunBatch, thread: ThreadPoolExecutor) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self.gather()
            if not batch:
                continue
            start = time.perf_counter()
            try:
                results = await loop.run_in_executor(thread, runner, [waiting.item for waiting in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"the model gave {len(results)} results for a batch of {len(batch)}")
            except Exception as error:  # the batch's requests all get the error; the worker goes on
                for waiting in batch:
                    if not waiting.future.done():
                        waiting.future.set_exception(error)
                continue
            if self.on_batch is not None:
                self.on_batch(BatchDone(len(batch), time.perf_counter() - start))
            for waiting, result in zip(batch, results, strict=True):
                if not waiting.future.done():
                    waiting.future.set_result(result)
