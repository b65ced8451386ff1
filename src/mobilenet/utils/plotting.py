"""matplotlib, imported only when a figure is drawn (it is the ``plots`` extra), drawing to files only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mobilenet.utils.files import atomic_path
from mobilenet.utils.optional import require


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the file-only Agg backend, or one line naming the extra to install."""
    matplotlib = require("matplotlib", "plots")
    matplotlib.use("Agg")  # files only: no display needed
    return require("matplotlib.pyplot", "plots")


def save_figure(fig: Any, path: str | Path, dpi: int = 110) -> None:
    """Write a figure as PNG atomically and close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    pyplot().close(fig)
