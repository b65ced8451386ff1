"""The ``mobilenet`` command: one module per command (``mobilenet.cli.commands.<command>``), each adding its
arguments and running by calling the library and printing what it returns.

Only the command that runs builds its arguments and imports what it needs (PyTorch included), so ``mobilenet
--help`` and ``mobilenet list`` answer at once.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import textwrap
from collections.abc import Sequence
from typing import Any

from mobilenet import __version__

# The commands, in the order ``mobilenet --help`` lists them: each is mobilenet.cli.commands.<command>.
COMMANDS = (
    "list", "weights", "verify", "profile", "convert", "predict", "eval", "segment", "detect", "shard", "train",
    "export", "bench", "serve", "pick", "paper",
)  # fmt: skip

DESCRIPTION = (
    "MobileNetV1 and MobileNetV2, exact to the papers, and the models the MobileNetV2 paper builds on them: train "
    "them, score them, run them on images, and ship them to ONNX, OpenVINO and TFLite."
)
EPILOG = """examples:
  mobilenet train                                   train on the embedded digits (about two minutes)
  mobilenet predict photo.jpg --weights DEFAULT     the top classes with torchvision's MobileNetV2
  mobilenet eval --weights best.safetensors --data val/
  mobilenet export best.safetensors model.onnx      ONNX, checked against PyTorch before it is kept
run `mobilenet COMMAND --help` for a command's options."""


def paragraphs(text: str, width: int = 100) -> str:
    """``text`` wrapped to ``width``, paragraph by paragraph (the help keeps descriptions as they are given)."""
    return "\n\n".join(textwrap.fill(" ".join(part.split()), width) for part in text.split("\n\n"))


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Help that states each option's default, and the choices a metavar would otherwise hide; descriptions and
    examples as they are written (:func:`paragraphs` wraps them)."""

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


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser of every command; given ``argv``, only the command it names gets its arguments (the others are
    listed, which is all ``mobilenet --help`` shows)."""
    parser = Parser(prog="mobilenet", description=paragraphs(DESCRIPTION), epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"mobilenet {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    commands = parser.add_subparsers(dest="command", required=True)
    chosen = next((word for word in argv or () if word in COMMANDS), None)
    for name in COMMANDS:
        module = importlib.import_module(f"mobilenet.cli.commands.{name}")
        command = commands.add_parser(name, help=module.HELP, description=paragraphs(module.DESCRIPTION))
        if argv is None or name == chosen:
            module.add_arguments(command)
            command.set_defaults(func=module.run)
    return parser


# Failures a user can fix from the message alone; anything else is a bug, named as one.
EXPECTED = (ValueError, OSError, ImportError, RuntimeError)


def main(argv: list[str] | None = None) -> int:
    """Run one command: exit status 0, 1 for partial success, 2 for an error printed as one line on stderr."""
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
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
