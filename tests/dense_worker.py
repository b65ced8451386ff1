"""Run by tests, alone or under torchrun: train the digit-mask task through the unchanged trainer.

    python tests/dense_worker.py OUT_DIR JSON_OVERRIDES [--resume RUN_DIR]

trains ``make_config(**overrides)`` (or continues the run in RUN_DIR, whose config.json then decides) and
saves each process's parameters as OUT_DIR/rank{r}.pt for the test to compare.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.distributed as dist

from dense_task import DigitMaskTask  # this script's folder (tests/) is first on sys.path
from mobilenet.training.recipes import make_config
from mobilenet.training.trainer import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for rank{r}.pt")
    parser.add_argument("overrides", type=json.loads, help="TrainConfig fields as a JSON object")
    parser.add_argument("--resume", type=Path, default=None, help="a run directory to continue")
    args = parser.parse_args()
    config = None if args.resume is not None else make_config(**args.overrides)  # a resumed run has its own
    result = train(config, DigitMaskTask(), resume=args.resume, progress=False)
    rank = dist.get_rank() if dist.is_initialized() else 0
    params = {name: p.detach().cpu().clone() for name, p in result.model.named_parameters()}
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(params, args.out / f"rank{rank}.pt")
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
