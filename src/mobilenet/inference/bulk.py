"""Bulk inference into a results file that survives a kill: each image's result as one JSON line, in the images'
order, appended a chunk at a time (one write, flushed to disk). The same command started again reads what the file
holds, cuts away a line a kill left half-written, and goes on from the next image: no gaps, no duplicates.

A Parquet file (``.parquet``) is written whole at the end, atomically, from those lines: until then they go to a
hidden journal beside it (``.preds.parquet.jsonl``), which a resumed run goes on with and the finished file replaces.
A file that is not a results file of the same images is never written over unless asked (``force``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from mobilenet.inference.results import write_parquet
from mobilenet.utils.outputs import OutputRefused, check_outputs

SUFFIX = ".jsonl"
PARQUET = ".parquet"
SUFFIXES = (SUFFIX, PARQUET)
CHUNK = 64  # images per append: what a kill can cost at most

Predict = Callable[[list[Any]], list[dict[str, Any]]]  # images (files, members, rows) -> a JSON-ready result each


@dataclass(frozen=True)
class BulkRun:
    """What a run did: the file, the images, those found done, those run now, the unreadable, and the time."""

    out: str
    images: int
    resumed: int
    written: int
    errors: int
    seconds: float

    def summary(self) -> str:
        resumed = f", {self.resumed} already there" if self.resumed else ""
        if not self.written:
            return f"{self.out}: {self.images} images{resumed}; nothing left to run"
        rate = self.written / self.seconds if self.seconds > 0 else 0.0
        errors = f", {self.errors} unreadable (their lines say why)" if self.errors else ""
        return f"{self.out}: {self.images} images{resumed}; {self.written} run now at {rate:.1f}/s{errors}"


def journal_of(out: Path) -> Path:
    """Where the lines of a results file go as they are written: the file itself, or a Parquet file's journal."""
    return out.with_name(f".{out.name}{SUFFIX}") if out.suffix == PARQUET else out


def journal_results(journal: Path) -> Iterator[dict[str, Any]]:
    """The results a journal holds, one per line, in order."""
    with journal.open("rb") as file:
        for line in file:
            yield json.loads(line)


def results_done(out: Path, images: Sequence[str]) -> int:
    """How many of ``images`` (their names) the results file ``out`` holds already, in order (0 if none); a last
    line without its newline, which a kill left, is cut away. A file of other content is refused in one line."""
    if out.suffix == PARQUET and out.exists() and not journal_of(out).exists():
        import pyarrow.parquet as parquet

        try:
            done = parquet.read_table(out, columns=["image"]).column("image").to_pylist()
        except (OSError, KeyError, ValueError):
            done = None
        if done != list(images):
            raise OutputRefused(f"{out} is not a results file of these images: name another file, or add --force to "
                                "replace it")  # fmt: skip
        return len(done)
    out = journal_of(out)
    if not out.exists():
        return 0
    data = out.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    lines = complete.splitlines()
    for number, line in enumerate(lines, start=1):
        try:
            image = json.loads(line)["image"]
        except (ValueError, TypeError, KeyError):
            raise OutputRefused(
                f"{out} is not a results file (line {number} is no JSON result with an image): name another file, "
                "or add --force to replace it"
            ) from None
        if number > len(images) or image != images[number - 1]:
            expected = images[number - 1] if number <= len(images) else "no more images"
            raise OutputRefused(
                f"{out} holds results of other images (line {number}: {image}, where this run has {expected}): "
                "name another file, or add --force to start it again"
            )
    if len(complete) < len(data):
        os.truncate(out, len(complete))
    return len(lines)


def check_results_file(out: str | Path, images: Sequence[Any], force: bool = False) -> int:
    """Refuse, in one line, a results file ``out`` that this run on ``images`` must not write (see
    :func:`results_done`; ``force`` starts it again); else how many of the images it holds already."""
    out = Path(out)
    if out.suffix not in SUFFIXES:
        raise ValueError(f"the results file {out} must end in {SUFFIX} (a JSON line per image) or {PARQUET}")
    names = [str(image) for image in images]
    check_outputs(dict.fromkeys([out, journal_of(out)]), names, overwrite=True)  # one file for .jsonl
    return 0 if force else results_done(out, names)


def predict_to_file(
    predict: Predict,
    images: Sequence[str],
    out: str | Path,
    force: bool = False,
    chunk: int = CHUNK,
    progress: bool = True,
) -> BulkRun:
    """Run ``predict`` over ``images`` a chunk at a time, appending each result to ``out`` (a ``.jsonl`` file).

    Args:
        predict: image files -> their results (dicts with ``"image"``, as the kinds' ``predict`` returns them).
        images: the images (files, shards' members, tables' rows), in the order the lines are written.
        out: the results file (``.jsonl`` or ``.parquet``): started, or resumed where it stops if it holds the first
            results of ``images``.
        force: start the file again whatever it holds.
        chunk: images per append.
        progress: show a bar with the rate and time left.

    Returns:
        What was done (:class:`BulkRun`).
    """
    out = Path(out)
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1 image, got {chunk}")
    resumed = check_results_file(out, images, force)
    written = errors = 0
    start = time.perf_counter()
    if resumed == len(images) and not journal_of(out).exists():
        return BulkRun(str(out), len(images), resumed, written, errors, time.perf_counter() - start)
    journal = journal_of(out)
    with (
        journal.open("ab" if resumed else "wb") as file,
        tqdm(total=len(images), initial=resumed, unit="img", desc="predicting", disable=not progress) as bar,
    ):
        for first in range(resumed, len(images), chunk):
            results = predict(list(images[first : first + chunk]))
            file.write(b"".join(json.dumps(result).encode() + b"\n" for result in results))
            file.flush()
            os.fsync(file.fileno())  # on disk before the next chunk: a kill costs one chunk at most
            written += len(results)
            errors += sum("error" in result for result in results)
            bar.update(len(results))
    if out.suffix == PARQUET:
        write_parquet(lambda: journal_results(journal), out)
        journal.unlink()
    return BulkRun(str(out), len(images), resumed, written, errors, time.perf_counter() - start)
