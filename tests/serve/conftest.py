"""Fixtures of the server tests: tiny models of each kind (random weights) served on 127.0.0.1 from a thread."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.models import tiny_weights


@pytest.fixture(scope="session")
def tiny_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Our safetensors of a tiny classifier, segmenter and detector, named as the server names them."""
    folder = tmp_path_factory.mktemp("served")
    files = {}
    for name in ("classifier", "segmenter", "detector"):
        files[name] = folder / f"{name}.safetensors"
        files[name].write_bytes(tiny_weights(name))
    return files


@pytest.fixture(scope="session")
def tiny_models(tiny_files: dict[str, Path]) -> list:
    """The three tiny models loaded and deployed as ``mobilenet serve`` does (the fastest backend: an export)."""
    from mobilenet.serve import load_models, parse_spec

    return load_models([parse_spec(str(path)) for path in tiny_files.values()])


@pytest.fixture(scope="session")
def server(tiny_models: list) -> Iterator[str]:
    """The URL of a server of the three tiny models, with batching as the command line's defaults."""
    from mobilenet.serve import running

    with running(tiny_models) as url:
        yield url
