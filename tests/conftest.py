"""Shared fixtures: the real data in ../shared, and the test-only references (torchvision, timm)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]

SHARED = Path(os.environ.get("MOBILENET_SHARED", ROOT.parent / "shared"))


def shared_path(relative: str) -> Path:
    """A path under ../shared/data, or a skip that says what is missing and why."""
    path = SHARED / "data" / relative
    if not path.exists():
        pytest.skip(f"needs {path}: the real data in ../shared (set MOBILENET_SHARED to point elsewhere)")
    return path


@pytest.fixture(scope="session")
def synset_to_index() -> dict[str, int]:
    """ImageNet synset -> class index (rank of the synset in sorted order, as torchvision)."""
    index = json.loads(shared_path("imagenet_class_index.json").read_text())
    return {synset: int(i) for i, (synset, _name) in index.items()}


@pytest.fixture(scope="session")
def torchvision_models():
    from tests.reference_shim import import_torchvision

    return import_torchvision().models


@pytest.fixture(scope="session")
def timm():
    from tests.reference_shim import import_timm

    return import_timm()


@pytest.fixture
def one_thread() -> Iterator[None]:
    """In-process runs on one thread, as the subprocesses (OMP_NUM_THREADS=1): the same kernels, the same bits."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def trained_like(model: nn.Module) -> nn.Module:
    """Non-trivial BatchNorm statistics and affine terms, so that folding has something to fold."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.2)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.normal_(1, 0.2)
                module.bias.normal_(0, 0.2)
    return model.eval()


# A tiny, fast run on the embedded digits: what the loop does does not depend on the size.
TINY = {"model": "mobilenet_v2_035", "batch_size": 32, "val_fraction": 0.5, "epochs": 2, "lr": 0.05}


def cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mobilenet", *args], capture_output=True, text=True, **kwargs)


def flags(settings: dict) -> list[str]:
    return [item for key, value in settings.items() for item in (f"--{key.replace('_', '-')}", str(value))]
