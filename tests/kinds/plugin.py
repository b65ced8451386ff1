"""The test-only keypoint kind installed as a plugin: registered in this process, and in every process started
meanwhile through the ``mobilenet.kinds`` entry point of a distribution on ``PYTHONPATH``, as a package of its own
would install it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mobilenet import registry
from tests.helpers.data import ROOT
from tests.kinds.keypoints import KIND

DISTRIBUTION = "mobilenet_keypoints-0.1.dist-info"


def write_distribution(folder: Path) -> Path:
    """The metadata of an installed distribution whose ``mobilenet.kinds`` entry point is the keypoint kind."""
    info = folder / DISTRIBUTION
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mobilenet-keypoints\nVersion: 0.1\n")
    entry = f"{KIND.name} = tests.kinds.keypoints:KIND"
    (info / "entry_points.txt").write_text(f"[{registry.ENTRY_POINT_GROUP}]\n{entry}\n")
    return folder


@contextmanager
def plugin_installed(folder: Path) -> Iterator[None]:
    """The keypoint kind registered here, and on ``PYTHONPATH`` (with this checkout, which holds its module) for the
    processes started in the block."""
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(write_distribution(folder)), str(ROOT), before]))
    registry.register(KIND)
    try:
        yield
    finally:
        registry.unregister(KIND.name)
        if before is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = before
