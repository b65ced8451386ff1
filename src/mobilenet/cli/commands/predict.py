"""``mobilenet predict``: any model on image files, as its kind runs it (a classifier's top classes, a segmenter's
masks, a detector's boxes), through ``deploy``."""

from __future__ import annotations

import argparse

HELP = "run any model on images: top classes, class masks or boxes, as the weights' kind gives them"
DESCRIPTION = (
    "Run a model on image files: the kind of model the weights hold decides what comes out (a classifier's top "
    "classes, a segmenter's class shares and masks, a detector's boxes). The options of one kind are refused "
    "for another's weights."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mobilenet.cli.kinds import add_run_arguments
    from mobilenet.registry import kinds

    add_run_arguments(parser, kinds(), "any weights file mobilenet reads (the file says its kind), a graph it exported "
                      "(.onnx, OpenVINO .xml, ExecuTorch .pte), or a published weights name")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from mobilenet.cli.kinds import run_on_images
    from mobilenet.registry import kinds

    return run_on_images(args, kinds())
