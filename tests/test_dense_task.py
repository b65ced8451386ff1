"""A second task through the unchanged trainer: per-pixel segmentation of the digits (tests/dense_task.py).

The loop's guarantees (exact resume after SIGKILL, torchrun equal to accumulation, EMA, bf16, channels-last,
the divergence stop, the run directory) must hold for a dense task as they do for classification.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mobilenet.training.recipes import make_config
from mobilenet.training.trainer import Trainer, TrainingDiverged, train
from mobilenet.weights.load import load_model
from tests.dense_task import CLASS_NAMES, DigitMaskNet, DigitMaskTask, load_digit_mask_net

# Tiny and fast: 899 training digits in 28 steps of 32 per epoch, 898 for validation. Segmentation wants a larger
# step than the classification default, and no label smoothing or warm-up in so short a run.
DENSE = {
    "task": "digit_mask",  # recorded in summary.json; the trainer itself is handed the task object
    "model": "mobilenet_v2_035",
    "batch_size": 32,
    "val_fraction": 0.5,
    "epochs": 2,
    "lr": 0.2,
    "label_smoothing": 0.0,
    "warmup_epochs": 0.0,
    "hflip": True,
    "workers": 0,
}
STEPS_PER_EPOCH = 899 // 32
WORKER = Path(__file__).with_name("dense_worker.py")
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Train in-process on one thread, as the workers do: on a loaded machine OpenMP's threads wait on each other
    (measured on two busy cores: an epoch took 37 s on two threads, 6.5 s on one)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def worker(out: Path, overrides: dict, *extra: str, launcher: list[str] | None = None) -> list[str]:
    """The command line that runs tests/dense_worker.py (under ``launcher``, by default this Python)."""
    return [*(launcher or [sys.executable]), str(WORKER), str(out), json.dumps({**DENSE, **overrides}), *extra]


def run_worker(command: list[str]) -> None:
    # One thread per process: two torchrun processes on two cores must not fight over them.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, cwd=WORKER.parents[1])
    assert done.returncode == 0, done.stderr[-3000:]


def metrics_rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "metrics.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_dataset_flips_image_and_mask_together_and_scores_a_constant_model() -> None:
    task = DigitMaskTask()
    model, data = task.prepare(make_config(**DENSE, out="unused"))
    image, mask = data.train[0, 0]
    label = int(mask.max()) - 1
    assert image.shape == (3, 32, 32) and mask.shape == (32, 32) and mask.dtype == torch.long
    assert set(mask.unique().tolist()) == {0, label + 1}  # background and this digit's class only
    seeds = range(20)
    flipped = [seed for seed in seeds if not torch.equal(data.train[0, seed][1], mask)]
    assert 0 < len(flipped) < len(seeds)  # the seed decides, about half the time
    other_image, other_mask = data.train[0, flipped[0]]
    assert torch.equal(other_image, image.flip(-1)) and torch.equal(other_mask, mask.flip(-1))
    assert torch.equal(data.train[0, flipped[0]][1], other_mask)  # the same seed, the same sample
    assert torch.equal(data.val[3][1], data.val[3, 12345][1])  # validation is never flipped

    # Any callable to logits can be scored (the int8 IR is one): "all background" hits exactly the background.
    masks = torch.stack([data.val[i][1] for i in range(len(data.val))])
    background = (masks == 0).double().mean().item()
    always_background = torch.zeros(1, len(CLASS_NAMES), 1, 1)
    always_background[:, 0] = 1.0
    scored = task.evaluate(lambda x: always_background.expand(len(x), -1, *x.shape[-2:]), data.val, 64, 0, "cpu")
    assert scored.n == len(data.val) == 898 and scored.skipped == 0
    assert scored.metrics["pixel_acc"] == pytest.approx(background)
    assert scored.metrics["miou"] == pytest.approx(background / len(CLASS_NAMES))  # every digit class: IoU 0
    assert model(image[None]).shape == (1, len(CLASS_NAMES), 32, 32)


def test_trains_through_the_trainer_and_beats_the_untrained_model(tmp_path) -> None:
    config = make_config(**DENSE, out=str(tmp_path / "run"))
    torch.manual_seed(config.seed)  # the trainer's initial weights
    untrained, data = DigitMaskTask().prepare(config)
    before = DigitMaskTask().evaluate(untrained, data.val, 64, 0, torch.device("cpu"))

    result = train(config, DigitMaskTask(), progress=False)
    assert result.steps == 2 * STEPS_PER_EPOCH and result.best_metric == "miou"
    assert result.val.metrics["miou"] > max(0.25, before.metrics["miou"] + 0.2), (before.metrics, result.val.metrics)
    assert result.val.metrics["pixel_acc"] > before.metrics["pixel_acc"]

    run = result.run_dir
    rows = metrics_rows(run)
    assert len(rows) == 2 and {"train_pixel_acc", "val_miou", "val_pixel_acc"} <= set(rows[0])
    summary = json.loads((run / "summary.json").read_text())
    assert summary["task"] == "digit_mask" and summary["classes"] == len(CLASS_NAMES)
    assert summary["best_val_miou"] == max(float(row["val_miou"]) for row in rows) == result.best
    # best.safetensors holds what rebuilds the model (config, mask classes, preprocessing), as qat's float_model
    # rebuilds it: type(model)(model.config).
    rebuilt = load_digit_mask_net(run / "best.safetensors")
    with pytest.raises(ValueError, match="holds a 'digit_mask' model, not a MobileNet classifier"):
        load_model(run / "best.safetensors")  # the file says what kind of model it holds
    assert rebuilt.class_names == CLASS_NAMES and rebuilt.preprocessing == result.model.preprocessing
    assert {k: v.shape for k, v in DigitMaskNet(result.model.config).state_dict().items()} == {
        k: v.shape for k, v in result.model.state_dict().items()
    }
    if float(rows[-1]["val_miou"]) == result.best:  # the last epoch was the best: the same weights
        images = torch.stack([data.val[i][0] for i in range(8)])
        torch.testing.assert_close(rebuilt.eval()(images), result.model.eval()(images))


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_is_bitwise_equal(tmp_path) -> None:
    settings = {"epochs": 1, "checkpoint_every": 4}  # dropout on: the resumed RNG must give the same masks
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    run_worker(worker(tmp_path / "whole-params", {**settings, "out": str(whole)}))

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        worker(tmp_path / "unused", {**settings, "out": str(killed)}),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=WORKER.parents[1],
    )  # fmt: skip
    deadline = time.time() + 300
    pointer = killed / "last.json"
    while time.time() < deadline and process.poll() is None:
        if pointer.exists() and json.loads(pointer.read_text())["step"] >= 12:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    position = json.loads(pointer.read_text())
    assert position["epoch"] == 0 and 0 < position["step_in_epoch"] < STEPS_PER_EPOCH  # mid-epoch

    run_worker(worker(tmp_path / "resumed-params", {}, "--resume", str(killed)))
    a, b = load_file(whole / "last.safetensors"), load_file(killed / "last.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    first, second = (
        torch.load(tmp_path / "whole-params" / "rank0.pt"),
        torch.load(tmp_path / "resumed-params" / "rank0.pt"),
    )
    assert all(torch.equal(first[k], second[k]) for k in first)
    timing = ("images_per_s", "skipped")  # the last columns: wall-clock speed differs, and nothing else may
    assert [{k: v for k, v in row.items() if k not in timing} for row in metrics_rows(whole)] == [
        {k: v for k, v in row.items() if k not in timing} for row in metrics_rows(killed)
    ]


@pytest.mark.slow
def test_torchrun_two_processes_match_one(tmp_path) -> None:
    settings = {"epochs": 1, "dropout": 0.0, "ema_decay": None}  # nothing random that differs between processes

    def parameters(name: str, overrides: dict, launcher: list[str] | None = None) -> dict[str, dict[str, torch.Tensor]]:
        run_worker(
            worker(tmp_path / name, {**settings, **overrides, "out": str(tmp_path / f"{name}-run")}, launcher=launcher)
        )
        return {f.stem: torch.load(f) for f in (tmp_path / name).glob("rank*.pt")}

    ddp = parameters("ddp", {}, launcher=TORCHRUN)
    one = parameters("one", {"accum_steps": 2})
    assert ddp.keys() == {"rank0", "rank1"} and ddp["rank0"].keys() == one["rank0"].keys()
    for name in ddp["rank0"]:
        assert torch.equal(ddp["rank0"][name], ddp["rank1"][name]), name
        torch.testing.assert_close(ddp["rank0"][name], one["rank0"][name], rtol=1e-4, atol=1e-5)
    # Each process scored half the validation digits; the confusion matrix was summed, so mIoU is recorded once.
    assert len(metrics_rows(tmp_path / "ddp-run")) == 1 and float(metrics_rows(tmp_path / "ddp-run")[0]["val_miou"]) > 0


def test_ema_bf16_autocast_channels_last_and_accumulation_train(tmp_path) -> None:
    settings = {"epochs": 1, "ema_decay": 0.99, "amp": True, "channels_last": True, "accum_steps": 2}
    trainer = Trainer(make_config(**{**DENSE, **settings}, out=str(tmp_path / "run")), DigitMaskTask(), progress=False)
    result = trainer.run()
    assert result.steps == STEPS_PER_EPOCH and result.model is trainer.ema.module  # the average is what ships
    assert all(torch.isfinite(p).all() for p in result.model.parameters())
    assert all(torch.isfinite(torch.tensor(v)) for v in result.val.metrics.values()), result.val.metrics
    stem = trainer.model.backbone.features[0][0].weight
    assert stem.is_contiguous(memory_format=torch.channels_last)


def test_divergence_stops_with_one_line_and_keeps_the_last_checkpoint(tmp_path) -> None:
    settings = {"epochs": 1, "lr": 1e12, "checkpoint_every": 1}
    run = tmp_path / "run"
    with pytest.raises(TrainingDiverged) as stopped:
        train(make_config(**{**DENSE, **settings}, out=str(run)), DigitMaskTask(), progress=False)
    message = str(stopped.value)
    assert "\n" not in message and "last checkpoint in" in message, message
    pointer = json.loads((run / "last.json").read_text())
    assert all(torch.isfinite(t.float()).all() for t in load_file(run / pointer["weights"]).values())
