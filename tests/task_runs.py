"""Test-only: the runs every task is held to, as tiny ``mobilenet train`` settings of that task: killed mid-epoch
then resumed, bit for bit; and torchrun with two processes against one process accumulating two micro-batches."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mobilenet.tasks import train
from mobilenet.training.recipes import make_config
from tests.conftest import flags
from tests.faults import Kill, debris, kill_at, logged_outcome, sha256, start_training

TORCHRUN_LAUNCHER = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


def metrics_rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "metrics.csv").open() as handle:
        return list(csv.DictReader(handle))


def assert_sigkill_then_resume_is_bitwise_equal(tmp_path: Path, settings: dict, steps_per_epoch: int) -> None:
    """A whole run of ``settings`` (two epochs, a checkpoint every step), and `mobilenet train` killed at step 8 (in
    the second epoch) then resumed in this process, on one thread as that process ran: the same weights, the
    same metrics."""
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    train(make_config(**settings, out=str(whole)), progress=False)

    hit = kill_at(start_training([*flags(settings), "--out", str(killed)]), killed, Kill("step", step=8))
    position = json.loads((killed / "last.json").read_text())
    mid_epoch = position["epoch"] == 1 and 0 < position["step_in_epoch"] < steps_per_epoch
    assert hit.startswith("killed") and mid_epoch, (hit, position)
    train(resume=killed, progress=False)

    assert sha256(killed / "last.safetensors") == sha256(whole / "last.safetensors")
    assert debris(killed) == []
    timing = ("images_per_s",)
    assert [{k: v for k, v in row.items() if k not in timing} for row in metrics_rows(whole)] == [
        {k: v for k, v in row.items() if k not in timing} for row in metrics_rows(killed)
    ]


def assert_torchrun_matches_accumulation(tmp_path: Path, settings: dict, metric: str) -> None:
    """Two processes under torchrun against one accumulating two micro-batches: the same weights (BatchNorm frozen,
    so every tensor is comparable, statistics included), and the same validation ``metric`` (each process scored
    half of the images, summed or gathered across them)."""
    log, ddp, one = tmp_path / "ddp", tmp_path / "ddp-run", tmp_path / "one-run"
    process = start_training([*flags(settings), "--out", str(ddp)], launcher=TORCHRUN_LAUNCHER, log=log)
    outcome = logged_outcome(process, log)
    assert outcome.code == 0, outcome.describe()
    train(make_config(**settings, accum_steps=2, out=str(one)), progress=False)

    a, b = load_file(ddp / "last.safetensors"), load_file(one / "last.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5, msg=name)
    column = f"val_{metric}"
    assert float(metrics_rows(ddp)[0][column]) == pytest.approx(float(metrics_rows(one)[0][column]), abs=1e-3)
