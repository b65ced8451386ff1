"""The ``mobilenet`` command: parses arguments, calls the library, prints what it returns.

One module per group of commands, each adding its parsers; PyTorch is imported only by the command
that runs, so ``mobilenet --help`` and ``mobilenet list`` answer at once.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mobilenet import __version__
from mobilenet.cli import classify, detect, models, paper, segment, speed, train, weights

GROUPS = (models, weights, classify, segment, detect, train, speed, paper)


class HelpFormatter(argparse.HelpFormatter):
    """Help that states each option's default, and the choices a metavar would otherwise hide."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.choices is not None and action.metavar is not None:
            choices = ", ".join(str(choice) for choice in action.choices)
            text += f" (choices: {choices.replace('%', '%%')})"
        default = action.default
        # None and a store_true's False mean "not given", which the help already says; a help that
        # names its default itself (what an absent flag does) is left alone.
        shown = default is not None and default is not False and default != argparse.SUPPRESS
        if shown and "default" not in text and (action.option_strings or action.nargs == argparse.OPTIONAL):
            value = " ".join(map(str, default)) if isinstance(default, list | tuple) else str(default)
            text += f" (default: {value.replace('%', '%%')})"
        return text


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` with :class:`HelpFormatter`; its subcommands' parsers are of this class too."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(**kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="mobilenet", description=__doc__.splitlines()[0])
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
