"""What a command will write, checked before it does any work: nothing of the user's is overwritten unless asked.

An output is refused when it is one of the inputs (always), when two outputs are the same file, when a folder
stands where a file goes, and when the file exists and overwriting was not allowed. Outputs named after inputs get
one name each (:func:`distinct_names`), so that ``a/x.jpg`` and ``b/x.jpg`` never write the same file.
"""

from __future__ import annotations

import os
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path


class OutputRefused(ValueError):
    """An output that would destroy a file: the message names it, and what to do instead."""


def same_file_key(path: Path) -> tuple:
    """What identifies the file ``path`` names: its device and inode when it exists (hard and symbolic links
    included), else its absolute path with every link resolved."""
    try:
        stat = path.stat()
        return ("inode", stat.st_dev, stat.st_ino)
    except OSError:
        return ("path", os.path.realpath(path))


def check_outputs(
    outputs: Iterable[str | Path],
    inputs: Iterable[object] = (),
    overwrite: bool = False,
    allow: str = "overwrite=True",
) -> None:
    """Refuse, in one line and before anything is written, outputs that would destroy a file.

    Args:
        outputs: every file the work will write.
        inputs: the files it reads (paths, or what their ``str`` names: a shard's member), never written over, even
            when ``overwrite`` is allowed.
        overwrite: whether existing files (other than the inputs) may be replaced.
        allow: how the caller allows overwriting, for the message (``--force`` on the command line).

    Raises:
        OutputRefused: naming the first output refused and what to do instead.
    """
    read = {same_file_key(Path(str(path))) for path in inputs}
    written: dict[tuple, Path] = {}
    for output in map(Path, outputs):
        key = same_file_key(output)
        if key in read:
            raise OutputRefused(f"{output} is one of the inputs: it would be overwritten; write somewhere else")
        if key in written:
            raise OutputRefused(f"{written[key]} would be written twice: give the inputs distinct names")
        written[key] = output
        if output.is_dir():
            raise OutputRefused(f"{output} is a folder: name a file to write")
        for parent in output.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise OutputRefused(f"{parent} is a file, not a folder: {output} cannot be written inside it")
                break
        if output.exists() and not overwrite:
            raise OutputRefused(f"{output} exists: write somewhere else, or replace it ({allow})")


def check_folder(folder: str | Path, what: str = "--out") -> Path:
    """A folder to write in: refused in one line if it is a file."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputRefused(f"{what} {folder} is a file: name a folder to write in")
    return folder


def check_suffix(path: str | Path, suffixes: Sequence[str], what: str) -> None:
    """Refuse a file name whose extension says another format than ``what`` (written in ``suffixes``' first)."""
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise OutputRefused(
            f"{path} is not a name for {what}: name it {path.with_suffix(suffixes[0]).name}"
            + (f" (or {', '.join(suffixes[1:])})" if len(suffixes) > 1 else "")
        )


def distinct_names(images: Sequence[object]) -> list[str]:
    """A name per input to write its outputs under: its stem, or, where stems repeat (``a/x.jpg``, ``b/x.jpg``), its
    folder's name and stem (``a_x``, ``b_x``), with ``-2``, ``-3``... on what still repeats (one file given twice).
    An input is a path or what its ``str`` names (a shard's member, a table's row)."""
    paths = [Path(str(image)) for image in images]
    stems = [path.stem for path in paths]
    repeated = {stem for stem, count in Counter(stems).items() if count > 1}
    wanted = [
        f"{path.parent.name}_{stem}" if stem in repeated and path.parent.name else stem
        for path, stem in zip(paths, stems, strict=True)
    ]
    taken: set[str] = set()
    names = []
    for name in wanted:
        unique, count = name, 1
        while unique in taken:
            count += 1
            unique = f"{name}-{count}"
        taken.add(unique)
        names.append(unique)
    return names


def planned_outputs(images: Sequence[object], folder: str | Path, templates: Sequence[str]) -> list[list[Path]]:
    """Per image, the files written for it in ``folder``: each template (``"{name}_overlay.png"``) filled in with
    the image's name from :func:`distinct_names`."""
    folder = Path(folder)
    return [[folder / template.format(name=name) for template in templates] for name in distinct_names(images)]


def checked_outputs(
    images: Sequence[object], folder: str | Path, templates: Sequence[str], overwrite: bool = False
) -> Callable[[object], list[Path]]:
    """The files written for each image in ``folder`` (:func:`planned_outputs`), checked (:func:`check_outputs`) before
    any is written; returned as a function of the image, giving its files when asked in the images' order (an image
    given twice gets its second set the second time)."""
    planned = planned_outputs(images, folder, templates)
    check_outputs((path for paths in planned for path in paths), images, overwrite)
    queues: dict[str, deque[list[Path]]] = {}
    for image, paths in zip(images, planned, strict=True):
        queues.setdefault(str(image), deque()).append(paths)
    return lambda image: queues[str(image)].popleft()
