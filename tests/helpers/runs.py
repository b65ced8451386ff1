"""Tiny training runs and the checks every task is held to: killed mid-epoch then resumed, bit for bit; and torchrun
with two processes against one process accumulating two micro-batches."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mobilenet.tasks import make_config, train
from tests.helpers.faults import Kill, debris, kill_at, mobilenet_command, run_cli, sha256, start_training

# A tiny, fast run on the embedded digits, for what a run does rather than what it learns: the 32-pixel images
# through the network's strides (small_input off: 9x less compute than the digits' default full resolution).
TINY = {"model": "mobilenet_v2_035", "batch_size": 32, "val_fraction": 0.5, "epochs": 2, "lr": 0.05,
        "small_input": False}  # fmt: skip
TORCHRUN_LAUNCHER = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


def cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    """``mobilenet ARGS`` in a fresh process."""
    return subprocess.run(mobilenet_command(*args), capture_output=True, text=True, **kwargs)


def flags(settings: dict) -> list[str]:
    """Settings as the command line gives them: ``{"batch_size": 8, "ema": False}`` -> ``["--batch-size", "8",
    "--ema", "false"]``."""
    return [
        item
        for key, value in settings.items()
        for item in (f"--{key.replace('_', '-')}", str(value).lower() if isinstance(value, bool) else str(value))
    ]


def metrics_rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "metrics.csv").open() as handle:
        return list(csv.DictReader(handle))


def assert_sigkill_then_resume_is_bitwise_equal(tmp_path: Path, settings: dict) -> None:
    """A whole run of ``settings`` (two epochs of at least two steps, a checkpoint every step), and `mobilenet train`
    killed in the middle of its second epoch then resumed in this process, on one thread as that process ran: the
    same weights, the same metrics."""
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    train(make_config(**settings, checkpoint_every=1, out=str(whole)), progress=False)
    steps_per_epoch = json.loads((whole / "last.json").read_text())["step"] // 2
    assert steps_per_epoch >= 2, "a run of two epochs of two steps or more, to be killed inside its second"

    killing = [*flags(settings), "--checkpoint-every", "1", "--out", str(killed)]
    hit = kill_at(start_training(killing), killed, Kill("step", step=steps_per_epoch + steps_per_epoch // 2))
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


# What BatchNorm keeps of the batches it saw: under torchrun, each process's own micro-batches (rank 0's are saved).
STATISTICS = ("running_mean", "running_var", "num_batches_tracked")


def assert_torchrun_matches_accumulation(tmp_path: Path, settings: dict, metric: str) -> None:
    """Two processes under torchrun against one accumulating two micro-batches: the same weights and, with BatchNorm
    frozen, the same statistics and validation ``metric`` (each process scored half of the images, summed or gathered
    across them). BatchNorm that trains normalizes each micro-batch by its own statistics either way, so the
    gradients and the weights are the same; its running statistics are each process's own."""
    ddp, one = tmp_path / "ddp-run", tmp_path / "one-run"
    outcome = run_cli("train", *flags(settings), "--out", str(ddp), launcher=TORCHRUN_LAUNCHER)
    assert outcome.code == 0, outcome.describe()
    config = make_config(**settings, accum_steps=2, out=str(one))
    train(config, progress=False)

    a, b = load_file(ddp / "last.safetensors"), load_file(one / "last.safetensors")
    assert a.keys() == b.keys()
    # freeze_bn keeps the statistics a norm was given; a norm still at PyTorch's initial ones learns them.
    frozen = json.loads((one / "summary.json").read_text())["batchnorm_statistics"]["learned"] == 0
    compared = [name for name in a if frozen or not name.endswith(STATISTICS)]
    assert len(compared) > len(a) // 2
    for name in compared:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5, msg=name)
    if frozen:
        column = f"val_{metric}"
        assert float(metrics_rows(ddp)[0][column]) == pytest.approx(float(metrics_rows(one)[0][column]), abs=1e-3)


def assert_trained_and_scored_alike(
    tmp_path: Path, settings: dict, data: dict[str, dict], scored: list, metrics: tuple[str, ...], count: int
) -> None:
    """One data set in several forms (a folder, its shards, a Hugging Face dataset): training with ``settings`` on
    each of ``data`` (name -> its data settings) gives the same weights bit for bit, and ``mobilenet eval`` of them
    on each of ``scored`` the same ``metrics`` on ``count`` samples."""
    runs = [train(make_config(**settings, **given, out=str(tmp_path / f"run-{name}")), progress=False).run_dir
            for name, given in data.items()]  # fmt: skip
    first, *others = (load_file(run / "last.safetensors") for run in runs)
    for other in others:
        assert all(torch.equal(first[key], other[key]) for key in first)  # the same batches, bit for bit
    weights = str(runs[0] / "last.safetensors")
    scores = [json.loads(cli("eval", "--weights", weights, "--data", str(source), "--json", "--workers", "0").stdout)
              for source in scored]  # fmt: skip
    for other in scores[1:]:
        assert other["n"] == scores[0]["n"] == count and all(other[key] == scores[0][key] for key in metrics)
