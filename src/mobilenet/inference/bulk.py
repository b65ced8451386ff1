"""Bulk inference into a results file that survives a kill: each image's result as one JSON line, in the images'
order, appended a chunk at a time (one write, flushed to disk). The same command started again reads what the file
holds, cuts away a line a kill left half-written, and goes on from the next image: no gaps, no duplicates.

A file that is not a results file of the same images is never written over unless asked (``force``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from mobilenet.utils.outputs import OutputRefused, check_outputs

SUFFIX = ".jsonl"
CHUNK = 64  # images per append: what a kill can cost at most

Predict = Callable[[list[str]], list[dict[str, Any]]]  # image files -> one JSON-ready result each, in order


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


def results_done(out: Path, images: Sequence[str]) -> int:
    """How many of ``images`` the results file ``out`` holds already, in order (0 if it does not exist); a last line
    without its newline, which a kill left, is cut away. A file of other content is refused in one line."""
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
        images: the image files, in the order the lines are written.
        out: the results file: started, or resumed where it stops if it holds the first results of ``images``.
        force: start the file again whatever it holds.
        chunk: images per append.
        progress: show a bar with the rate and time left.

    Returns:
        What was done (:class:`BulkRun`).
    """
    out = Path(out)
    if out.suffix != SUFFIX:
        raise ValueError(f"the results file {out} must end in {SUFFIX} (one JSON line per image)")
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1 image, got {chunk}")
    check_outputs([out], images, overwrite=True)
    resumed = 0 if force else results_done(out, images)
    written = errors = 0
    start = time.perf_counter()
    with (
        out.open("ab" if resumed else "wb") as file,
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
    return BulkRun(str(out), len(images), resumed, written, errors, time.perf_counter() - start)
