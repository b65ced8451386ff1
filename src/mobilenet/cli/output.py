"""Printing what a command returns per image: one JSON object each, or lines for people; errors on stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
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
