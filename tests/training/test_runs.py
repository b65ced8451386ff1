"""Runs that lose nothing and say what they do: exclusive run folders, exact resumes (also under torchrun),
one-line refusals of what cannot be done, and no debris."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import mobilenet
from mobilenet.nn.model import weight_count
from mobilenet.tasks import make_config
from mobilenet.training.config import resume_config
from tests.helpers.data import write_images
from tests.helpers.faults import Kill, kill_at, run_cli, run_in_process, start_training
from tests.helpers.runs import TINY, TORCHRUN_LAUNCHER, cli, flags

ONE_EPOCH = {**TINY, "epochs": 1, "workers": 0}
MECHANICS = {**ONE_EPOCH, "input_size": 32, "batch_size": 16}  # two steps of 16 images of a small folder


@pytest.fixture(scope="module")
def small_classes(tmp_path_factory) -> Path:
    """Three class folders of 24 small JPEGs (half of them held out for validation)."""
    root = tmp_path_factory.mktemp("classes")
    for name in ("a", "b", "c"):
        write_images(root / name, 24, size=(32, 32))
    return root


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"batch_size": 0}, "--batch-size must be at least 1"),
        ({"epochs": 0}, "--epochs must be at least 1"),
        ({"epochs": -1}, "--epochs must be at least 1"),
        ({"lr": float("nan")}, "--lr must be a finite number > 0"),
        ({"val_fraction": 1.5}, "--val-fraction must be between 0 and 1"),
        ({"workers": -1}, "--workers must be 0 or more"),
    ],
)
def test_impossible_settings_are_refused_in_one_line(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_config(**overrides)


def test_a_width_that_cannot_fit_is_refused_before_allocating() -> None:
    # Counted from the table without building: equal to the weights of the network it describes.
    for config in (mobilenet.mobilenet_v2(width_mult=0.35).config, mobilenet.mobilenet_v1(num_classes=7).config):
        built = mobilenet.MobileNet(config)
        assert weight_count(config) == sum(p.numel() for p in built.parameters() if p.dim() > 1)
    with pytest.raises(ValueError, match=r"width_mult 100 makes \d+ GB of weights.*mobilenet_v2_100 is width 1.0"):
        mobilenet.mobilenet_v2(width_mult=100)


def test_resume_refuses_changes_and_finished_runs_but_extends_them(tmp_path, small_classes) -> None:
    run = tmp_path / "run"
    first = cli("train", *flags({**MECHANICS, "data": small_classes}), "--out", str(run))
    assert first.returncode == 0, first.stderr
    # Killed after its last checkpoint, while it wrote its curves and summary: resumed, it writes them.
    summary = json.loads((run / "summary.json").read_text())
    (run / "summary.json").unlink()
    (run / "curves.png").unlink()
    (run / ".summary.json.k1ll3d.tmp").write_text('{"task": "classif')
    finished = cli("train", "--resume", str(run))
    assert finished.returncode == 0, finished.stderr
    assert json.loads((run / "summary.json").read_text()) == summary and (run / "curves.png").is_file()
    assert not list(run.glob(".*.tmp"))
    again = run_in_process(["train", "--resume", str(run)])  # refusals: in this process, no start-up
    assert again.code == 2 and "has finished its 1 epochs: extend it with --resume" in again.stderr
    changed = run_in_process(["train", "--resume", str(run), "--lr", "0.5"])
    assert changed.code == 2 and "--lr cannot change when resuming" in changed.stderr
    with pytest.raises(ValueError, match="--recipe cannot change when resuming"):
        resume_config(run, recipe="paper")
    extended = cli("train", "--resume", str(run), "--epochs", "2")
    assert extended.returncode == 0, extended.stderr
    assert json.loads((run / "config.json").read_text())["epochs"] == 2
    assert len((run / "metrics.csv").read_text().splitlines()) == 3  # header and two epochs
    # One TensorBoard event file after three processes, holding each epoch once.
    (events,) = (run / "tensorboard").glob("events.out.tfevents.*")
    scalars = EventAccumulator(str(events)).Reload().Scalars("train_loss")
    assert [scalar.step for scalar in scalars] == [1, 2]
    missing = run_in_process(["train", "--resume", str(tmp_path / "nothing")])
    assert missing.code == 2 and "holds no run to resume" in missing.stderr


def test_a_run_that_fails_before_its_first_checkpoint_leaves_no_folder(tmp_path, small_classes) -> None:
    run = tmp_path / "run"
    settings = {**MECHANICS, "data": small_classes, "lr": 1e12, "warmup_epochs": 0}
    result = cli("train", *flags(settings), "--out", str(run))
    assert result.returncode == 2
    line = result.stderr.strip().splitlines()[-1]
    assert "training stopped and no checkpoint was written" in line and "Traceback" not in result.stderr
    assert not run.exists()


@pytest.mark.slow
def test_torchrun_killed_and_resumed_is_bitwise_equal(tmp_path) -> None:
    # Dropout on: every process's generator must be saved and restored, not only rank 0's.
    args = flags({**ONE_EPOCH, "checkpoint_every": 4, "dropout": 0.2})
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    done = run_cli("train", *args, "--out", str(whole), launcher=TORCHRUN_LAUNCHER)
    assert done.code == 0, done.describe()
    hit = kill_at(start_training([*args, "--out", str(killed)], launcher=TORCHRUN_LAUNCHER), killed, Kill("step", 12))
    position = json.loads((killed / "last.json").read_text())
    assert hit.startswith("killed") and 0 < position["step_in_epoch"] < 28, (hit, position)  # mid-epoch
    resumed = run_cli("train", "--resume", str(killed), launcher=TORCHRUN_LAUNCHER)
    assert resumed.code == 0, resumed.describe()
    a, b = load_file(whole / "last.safetensors"), load_file(killed / "last.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not list(killed.rglob("*.tmp"))
    alone = run_cli("train", "--resume", str(killed), "--epochs", "2")
    assert alone.code == 2 and "was trained by 2 processes: resume it with as many" in alone.stderr


def test_the_same_config_trains_the_same_weights_whatever_ran_before(tmp_path) -> None:
    fresh = tmp_path / "fresh"
    done = cli("train", *flags(ONE_EPOCH), "--out", str(fresh))  # a new process
    assert done.returncode == 0, done.stderr
    recorded = json.loads((fresh / "config.json").read_text())
    summary = json.loads((fresh / "summary.json").read_text())
    assert summary["machine"]["threads"] == recorded["threads"] >= 1 and summary["machine"]["cpu"]
    # This process, after other work has changed its thread count and drawn from its generator.
    torch.set_num_threads(3 - min(recorded["threads"], 2))
    torch.rand(1000)
    again = mobilenet.train(make_config(**ONE_EPOCH, threads=recorded["threads"], out=str(tmp_path / "again")),
                            progress=False)  # fmt: skip
    assert (again.run_dir / "last.safetensors").read_bytes() == (fresh / "last.safetensors").read_bytes()
