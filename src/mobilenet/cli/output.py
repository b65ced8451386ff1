"""What a command gives back: printed per image (one JSON object each, or lines for people; errors on stderr), and
written to files that are checked first, so that nothing of the user's is overwritten unless asked."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def print_per_image(results: list[dict[str, Any]], as_json: bool, show: Callable[[dict[str, Any]], str]) -> int:
    """Each result as a JSON line, or ``show(result)`` (an unreadable image: its error, on stderr).

    Returns the exit status: 1 when some image could not be read (the others are still printed), else 0.
    """
    for result in results:
        if as_json:
            print(json.dumps(result))
        elif "error" in result:
            print(f"{result['image']}: {result['error']}", file=sys.stderr)
        else:
            print(show(result))
    return 1 if any("error" in result for result in results) else 0


def add_force(parser: argparse.ArgumentParser, what: str = "the output") -> None:
    """``--force``: the one way to replace a file that exists (an input never is)."""
    parser.add_argument("--force", action="store_true", help=f"replace {what} if it exists (never an input)")


def check_output(
    args: argparse.Namespace,
    path: Path | None,
    suffixes: Sequence[str] = (),
    what: str = "",
    inputs: Sequence[str | Path | None] = (),
) -> None:
    """Refuse, before any work, to write ``path`` over a file (unless ``--force``) or over one of ``inputs``, or
    under a name whose extension (not one of ``suffixes``) says another format than ``what``."""
    from mobilenet.utils.outputs import check_outputs, check_suffix

    if path is None:
        return
    if suffixes:
        check_suffix(path, suffixes, what)
    check_outputs([path], [item for item in inputs if item is not None], args.force, allow="--force")


def add_plot(parser: argparse.ArgumentParser, help: str) -> None:
    """``--plot FILE.png`` and the ``--force`` that lets it replace a file."""
    parser.add_argument("--plot", type=Path, metavar="FILE.png", help=help)
    add_force(parser, "the plot")


def check_plot(args: argparse.Namespace, inputs: Sequence[str | Path | None] = ()) -> None:
    """``--plot``, checked before any work."""
    check_output(args, args.plot, (".png",), "a PNG", inputs)
