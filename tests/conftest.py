"""Fixtures only: the test-only references (torchvision, timm), ImageNet's class index, one thread, and the same
global state at the start of every test. What the tests share besides fixtures is in ``tests/helpers``."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator

import pytest
import torch

from tests.helpers.data import shared_path


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (``-n 2``), each worker and the commands it starts compute on its share of the cores: two
    workers of two threads each on two cores oversubscribe them (OpenMP's threads spin while they wait), 3-5x slower."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        threads = str(max(1, (os.cpu_count() or 1) // workers))
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = threads
        torch.set_num_threads(int(threads))


@pytest.fixture(scope="session")
def synset_to_index() -> dict[str, int]:
    """ImageNet synset -> class index (rank of the synset in sorted order, as torchvision)."""
    index = json.loads(shared_path("imagenet_class_index.json").read_text())
    return {synset: int(i) for i, (synset, _name) in index.items()}


@pytest.fixture(scope="session")
def torchvision_models():
    from benchmarks.references import import_torchvision

    return import_torchvision().models


@pytest.fixture(scope="session")
def timm():
    from benchmarks.references import import_timm

    return import_timm()


@pytest.fixture(scope="session", autouse=True)
def hugging_face_cache(tmp_path_factory) -> Iterator[None]:
    """Hugging Face datasets' cache (where Parquet is converted to Arrow) in the session's temporary folder, for this
    process and the commands it starts: never the user's ~/.cache."""
    cache = str(tmp_path_factory.mktemp("hf-datasets"))
    before = os.environ.get("HF_DATASETS_CACHE")
    os.environ["HF_DATASETS_CACHE"] = cache
    if "datasets" in sys.modules:  # imported already: it read the variable then
        sys.modules["datasets"].config.HF_DATASETS_CACHE = cache
    yield
    if before is None:
        del os.environ["HF_DATASETS_CACHE"]
    else:
        os.environ["HF_DATASETS_CACHE"] = before


@pytest.fixture
def one_thread() -> Iterator[None]:
    """In-process runs on one thread, as the subprocesses (OMP_NUM_THREADS=1): the same kernels, the same bits."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def fresh_torch_state() -> Iterator[None]:
    """Each test starts from the same global state, whatever ran before it: PyTorch's thread count, default dtype
    and random generator (seeded), and Python's logging handlers. A test that changes them gets them back."""
    threads, dtype, handlers = torch.get_num_threads(), torch.get_default_dtype(), list(logging.getLogger().handlers)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)
    torch.set_default_dtype(dtype)
    logging.getLogger().handlers[:] = handlers
