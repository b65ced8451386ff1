"""Published weights on disk: a cache directory, downloads checked against their sha256, nothing half-written.

The cache is ``$MOBILENET_CACHE``, else ``$XDG_CACHE_HOME/mobilenet``, else ``~/.cache/mobilenet``. A file
missing there is downloaded (with a progress bar) into a temporary file beside its place, hashed on the
way, and renamed into place only when its size and sha256 are the published ones; a failed, corrupted or
interrupted download leaves nothing behind. A cached file is checked again every time it is used.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from mobilenet.utils.files import atomic_path
from mobilenet.weights.published import PublishedWeights

CHUNK = 1 << 20


def cache_dir() -> Path:
    """Where published weights are kept (created on first download)."""
    if os.environ.get("MOBILENET_CACHE"):
        return Path(os.environ["MOBILENET_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mobilenet"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def check_file(path: Path, entry: PublishedWeights) -> None:
    """Refuse a file whose size or sha256 is not the published one."""
    size = path.stat().st_size
    if entry.size is not None and size != entry.size:
        raise ValueError(f"{path} has {size:,} bytes where {entry.name} has {entry.size:,}: it is not that file")
    digest = sha256_of(path)
    if not digest.startswith(entry.sha256):
        raise ValueError(f"{path} has sha256 {digest[:16]}... where {entry.name} has {entry.sha256[:16]}...")


def fetch(entry: PublishedWeights, progress: bool = True, timeout: float = 30.0) -> Path:
    """The path of ``entry``'s file in the cache, downloaded and checked first if it is not there yet."""
    path = cache_dir() / entry.filename
    if path.exists():
        try:
            check_file(path, entry)
        except ValueError as error:
            raise ValueError(f"{error}; delete it to download it again") from None
        return path
    try:
        with atomic_path(path) as tmp:
            download(entry.url, tmp, entry.size, progress, timeout)
            try:
                check_file(tmp, entry)
            except ValueError:
                raise ValueError(
                    f"the download of {entry.url} is damaged (its size or sha256 is not the published one) "
                    "and was removed: try again"
                ) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        reason = getattr(error, "reason", error)
        raise OSError(
            f"{entry.name} is not in {cache_dir()} and could not be downloaded from {entry.url} ({reason}): "
            f"download it yourself and put it at {path}"
        ) from None
    return path


def download(url: str, dest: Path, expected_size: int | None, progress: bool, timeout: float) -> None:
    """Stream ``url`` into ``dest``; a response shorter than it announced is an error, not a file."""
    with urllib.request.urlopen(url, timeout=timeout) as response, open(dest, "wb") as file:
        total = int(response.headers.get("Content-Length") or 0) or expected_size
        bar = tqdm(total=total, unit="B", unit_scale=True, desc=url.rsplit("/", 1)[1], disable=not progress)
        written = 0
        with bar:
            try:
                for block in iter(lambda: response.read(CHUNK), b""):
                    file.write(block)
                    written += len(block)
                    bar.update(len(block))
            except http.client.IncompleteRead as error:
                written += len(error.partial)
        if total and written != total:
            raise ValueError(f"the download of {url} stopped at {written:,} of {total:,} bytes: try again")
