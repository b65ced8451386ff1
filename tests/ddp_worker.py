"""Run by tests under torchrun: train a few steps, save this process's parameters for comparison."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from mobilenet.tasks import train
from mobilenet.training.recipes import make_config


def main() -> None:
    out, overrides = Path(sys.argv[1]), json.loads(sys.argv[2])
    result = train(make_config(**overrides), progress=False)
    rank = dist.get_rank() if dist.is_initialized() else 0
    params = {name: p.detach().clone() for name, p in result.model.named_parameters()}
    torch.save(params, out / f"rank{rank}.pt")
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
