"""Files written so that a crash at any moment leaves the old file or the new one, never half of one; and the
lines of the small text files users keep beside their data (class names, image ids)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path``, renamed over it only if the ``with`` block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private (0600); the result is an ordinary file
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def atomic_write(path: str | Path, write: Callable[[str], object]) -> None:
    """Have ``write`` fill a temporary file beside ``path``, then rename it over ``path``."""
    with atomic_path(path) as tmp:
        write(str(tmp))


def atomic_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def nonempty_lines(text: str) -> list[str]:
    """The lines of a list kept as text (labels, class names, ids), stripped, the empty ones left out."""
    return [line.strip() for line in text.splitlines() if line.strip()]
