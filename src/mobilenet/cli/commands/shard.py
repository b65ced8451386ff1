"""``mobilenet shard``: labelled data written as tar shards in webdataset's layout, which ``train`` and ``eval`` read
(``--data`` the shards' folder, one ``.tar`` or a pattern like ``train-{000000..000009}.tar``)."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

HELP = "write labelled data as tar shards (webdataset's layout) for train and eval"
DESCRIPTION = (
    "Write a task's labelled data as tar shards in a new folder, in webdataset's layout: the image files unchanged, "
    "each with its label (a class index, a mask, its boxes as JSON), a shard per --shard-size images. train and "
    "eval read the shards as they read the data (--data OUT, one .tar, or a pattern like "
    "'OUT/shard-{000000..000009}.tar'), by random access: a shuffled order, exact resume and torchrun as on folders. "
    "Nothing is written into or over an existing folder."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mobilenet.registry import kinds
    from mobilenet.utils.values import positive_int

    sharded = [kind.name for kind in kinds() if kind.shard is not None]
    parser.add_argument("source", type=Path, help="the labelled data, laid out as the task reads it")
    parser.add_argument("out", type=Path, help="the new folder to write the shards in")
    parser.add_argument("--task", default=sharded[0], choices=sharded, help="the task whose data this is")
    parser.add_argument("--shard-size", type=positive_int, default=1000, help="images per shard")
    parser.add_argument("--json", action="store_true", help="print what was written as one JSON object")


def run(args: argparse.Namespace) -> int:
    from mobilenet.registry import kind

    written = kind(args.task).call("shard", args.source, args.out, args.shard_size, progress=not args.json)
    print(json.dumps(asdict(written)) if args.json else written.summary())
    return 0
