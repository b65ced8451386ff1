"""The ``mobilenet`` command: parses arguments, calls the library, prints what it returns.

One module per group of commands, each adding its parsers; PyTorch is imported only by the command
that runs, so ``mobilenet --help`` and ``mobilenet list`` answer at once.
"""

from __future__ import annotations

import argparse
import sys

from mobilenet import __version__
from mobilenet.cli import classify, models, paper, speed, train

GROUPS = (models, classify, train, speed, paper)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mobilenet", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"mobilenet {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    commands = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.add_parsers(commands)
    return parser


# Failures a user can fix from the message alone; anything else is a bug, named as one.
EXPECTED = (ValueError, OSError, ImportError, RuntimeError)


def main(argv: list[str] | None = None) -> int:
    """Run one command: exit status 0, 1 for partial success, 2 for an error printed as one line on stderr."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("mobilenet: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if args.debug:
            raise
        message = " ".join(line.strip() for line in str(error).splitlines() if line.strip()) or type(error).__name__
        if not isinstance(error, EXPECTED):
            message = f"{type(error).__name__}: {message} (unexpected: rerun with --debug for the traceback)"
        print(f"mobilenet: error: {message}", file=sys.stderr)
        return 2
