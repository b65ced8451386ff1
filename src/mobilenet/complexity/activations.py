"""The peak memory of the tensors a call holds at once, counted op by op: what streaming inference lowers.

What is counted: the storages of the tensors passed in (the input batch) and of every tensor an ATen op
returns during the call, from the moment the op returns until the storage is freed, each storage once
however many views share it. Not counted: the tensors the call only reads without creating (a module's
weights and buffers, and views of them), and what a kernel allocates and frees inside one op (oneDNN's
reordered copies and scratch space, im2col buffers): a process's memory grows by more than this peak,
which ``benchmarks/streaming_memory.py`` measures as RSS beside it.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode


def storages_in(value: Any) -> Iterator[torch.UntypedStorage]:
    """The storages of the tensors in ``value``: a tensor, or tuples, lists and dicts of them (ops' arguments, results).

    Sparse and meta tensors have no storage of their own to count.
    """
    if isinstance(value, torch.Tensor):
        if value.layout == torch.strided and value.device.type != "meta":
            yield value.untyped_storage()
    elif isinstance(value, tuple | list):
        for item in value:
            yield from storages_in(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from storages_in(item)


class LiveTensorBytes(TorchDispatchMode):
    """While active, the bytes of the tensor storages alive (see the module's docstring) and their peak.

    A storage is followed by a ``weakref.finalize``, which subtracts its bytes when PyTorch frees it:
    PyTorch keeps one Python object per storage for as long as any tensor uses it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live = self.peak = 0
        self.sizes: dict[int, int] = {}  # id of a followed storage -> its bytes
        self.finalizers: dict[int, weakref.finalize] = {}

    def count(self, storage: torch.UntypedStorage) -> None:
        """Follow ``storage`` from now on (if not yet), and its size now."""
        key = id(storage)
        if key not in self.sizes:
            self.sizes[key] = 0
            self.finalizers[key] = weakref.finalize(storage, self.release, key)
        # A known storage can grow in place (an op's out= argument resized): count the difference.
        self.live += storage.nbytes() - self.sizes[key]
        self.sizes[key] = storage.nbytes()
        self.peak = max(self.peak, self.live)

    def release(self, key: int) -> None:
        self.live -= self.sizes.pop(key, 0)
        self.finalizers.pop(key, None)

    def stop_following(self) -> None:
        """Detach the finalizers of the storages still alive, so that they outlive this count without calling it."""
        for finalizer in self.finalizers.values():
            finalizer.detach()
        self.finalizers.clear()

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        # An output on the storage of an input is a view or an in-place result: it allocated nothing, and a view of
        # a weight (linear's transposed weight) must not start counting the weight.
        read = {id(storage) for storage in storages_in((args, kwargs))}
        for storage in storages_in(out):
            if id(storage) in self.sizes or id(storage) not in read:
                self.count(storage)
        return out


def peak_live_bytes(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """The most bytes of tensor storage alive at once during ``fn(*args, **kwargs)``, its tensor arguments included.

    ``fn``'s result counts while the call lasts; see the module's docstring for what is and is not counted.
    """
    counter = LiveTensorBytes()
    for storage in storages_in((args, kwargs)):
        counter.count(storage)
    try:
        with counter:
            fn(*args, **kwargs)
    finally:
        counter.stop_following()
    return counter.peak
