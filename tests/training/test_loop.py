"""The training loop, whatever the task: recipes' schedules, the command line's flags, the EMA, the sampler that makes
resumes and torchrun exact, and quantization-aware training as a hook (on the digits). What every task is held to
through the loop (exact resume, torchrun, divergence, bf16) is in ``tests/kinds``."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from torch.optim.swa_utils import AveragedModel

from mobilenet.classification.data import load_digits_images
from mobilenet.cli import build_parser
from mobilenet.cli.commands.train import train_config
from mobilenet.registry import create_model, load_deployed
from mobilenet.runtimes.quantize import require_nncf
from mobilenet.tasks import make_config, recipes, train, trainer
from mobilenet.training.optim import build_optimizer, ema_update, lr_factor
from mobilenet.training.sampling import ShardedSampler
from mobilenet.weights import load_model
from tests.helpers.faults import Kill, kill_at, run_cli, start_training
from tests.helpers.runs import TINY, TORCHRUN_LAUNCHER, cli, flags


def test_schedules() -> None:
    paper = make_config("paper", epochs=10)
    assert [lr_factor(paper, s, 10) for s in (0, 9, 10, 25)] == pytest.approx([1, 1, 0.98, 0.98**2])
    modern = make_config("modern", data="x", epochs=10, warmup_epochs=1)
    assert lr_factor(modern, 0, 10) == pytest.approx(0.1) and lr_factor(modern, 9, 10) == pytest.approx(1)
    assert lr_factor(modern, 55, 10) == pytest.approx(0.5) and lr_factor(modern, 100, 10) == pytest.approx(0)


def test_cli_overrides_only_given_flags_and_none_is_one() -> None:
    parse = build_parser().parse_args
    assert train_config(parse(["train", "--data", "x"])).ema_decay == recipes()["modern"].ema_decay
    assert train_config(parse(["train", "--data", "x", "--ema-decay", "none"])).ema_decay is None
    assert train_config(parse(["train", "--recipe", "paper", "--lr", "0.1"])).lr_batch == 96


def test_the_backbone_is_slowed_only_where_it_starts_from_weights() -> None:
    """``backbone_lr_mult`` keeps what the weights taught the backbone; from scratch it is as new as the head."""
    model = create_model("mobilenet_v2_035", num_classes=3)  # features.* and classifier.*
    for weights in (None, "w.safetensors"):
        config = make_config("finetune", data="x", weights=weights)
        rates = {group["lr"] for group in build_optimizer(config, model).param_groups}
        lr = config.scaled_lr()
        assert rates == ({lr} if weights is None else {lr, lr * config.backbone_lr_mult}), (weights, rates)
    assert config.backbone_lr_mult < 1


def test_ema_warms_up_like_tensorflow() -> None:
    # A fixed decay of 0.999 keeps (0.999)^200 = 82% of the initial weights after 200 steps; TF's warm-up
    # min(decay, (1 + n) / (10 + n)) forgets them, which is what makes EMA usable in a short run.
    model = torch.nn.BatchNorm2d(3)
    ema = AveragedModel(model, multi_avg_fn=ema_update(0.999), use_buffers=True)
    ema.update_parameters(model)  # the first call copies
    with torch.no_grad():
        model.weight.fill_(2.0)
        model.running_var.fill_(5.0)
        model.num_batches_tracked.fill_(200)
    for _ in range(200):
        ema.update_parameters(model)
    initial_share = (2.0 - ema.module.weight.detach()) / (2.0 - 1.0)
    assert float(initial_share.max()) < 0.01 and float((5.0 - ema.module.running_var).max()) < 0.04
    assert int(ema.module.num_batches_tracked) == 200


def test_sharded_sampler_is_accumulation_and_resumes() -> None:
    single = list(ShardedSampler(100, 8, seed=3, epoch=1))
    ranks = [list(ShardedSampler(100, 4, seed=3, epoch=1, rank=r, world=2)) for r in range(2)]
    # Each global batch of 8 = rank 0's 4 then rank 1's 4, exactly the single run's micro-batches.
    merged = [item for b in range(12) for r in range(2) for item in ranks[r][b * 4 : b * 4 + 4]]
    assert merged == single[:96] and len(single) == 96  # incomplete batches dropped
    assert list(ShardedSampler(100, 8, seed=3, epoch=1, start=5)) == single[40:]
    assert single != list(ShardedSampler(100, 8, seed=3, epoch=2))


def kill_mid_epoch_then_resume(tmp_path: Path, args: list[str]) -> tuple[Path, Path]:
    """The run of ``args`` twice, on one thread as the killed process: whole, and SIGKILLed mid-epoch then resumed.
    Returns both directories."""
    whole, run = tmp_path / "whole", tmp_path / "killed"
    full = run_cli("train", *args, "--out", str(whole), timeout=900)
    assert full.code == 0, full.describe()
    steps_per_epoch = json.loads((whole / "last.json").read_text())["step"]
    hit = kill_at(start_training([*args, "--out", str(run)]), run, Kill("step", step=12), timeout=600)
    position = json.loads((run / "last.json").read_text())
    mid_epoch = position["epoch"] == 0 and 0 < position["step_in_epoch"] < steps_per_epoch
    assert hit.startswith("killed") and mid_epoch, (hit, position)

    resumed = run_cli("train", "--resume", str(run), timeout=900)
    assert resumed.code == 0, resumed.describe()
    a, b = load_file(whole / "last.safetensors"), load_file(run / "last.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    strip = [line.rsplit(",", 2)[0] for line in (whole / "metrics.csv").read_text().splitlines()]
    assert strip == [line.rsplit(",", 2)[0] for line in (run / "metrics.csv").read_text().splitlines()]
    return whole, run


@pytest.fixture(scope="module")
def trained_digits(tmp_path_factory) -> Path:
    """Float weights to fine-tune with qat: four TINY epochs, which score 0.94-0.95 on one thread or two (two epochs
    scored 0.37-0.50, and 0.11-0.20 on an Intel Xeon: too close to chance for the int8 check below)."""
    out = str(tmp_path_factory.mktemp("float") / "run")
    run = train(make_config(**{**TINY, "epochs": 4, "small_input": True}, workers=0, out=out), progress=False)
    assert run.val.top1 > 0.8
    return run.run_dir / "best.safetensors"


# qat on the digits: 16 steps of 32 images; the float run's validation images and 20% more are held out.
QAT = {"batch_size": 32, "val_fraction": 0.7, "epochs": 1, "workers": 0}


@pytest.mark.slow
def test_quantization_aware_run_resumes_and_ships_an_int8_ir(tmp_path, trained_digits) -> None:
    settings = {**QAT, "weights": trained_digits, "checkpoint_every": 4}
    whole, killed = kill_mid_epoch_then_resume(tmp_path, ["--recipe", "qat", *flags(settings)])
    # What ships: plain float weights (the architecture came from the file) and the int8 IR, scored.
    model = load_model(whole / "best.safetensors")
    assert model.config.small_input and model.preprocessing.input_size == 32
    summary = json.loads((whole / "summary.json").read_text())
    assert summary["int8"] == json.loads((killed / "summary.json").read_text())["int8"]
    fake_quantized, int8 = summary["final"]["val_top1"], summary["int8"]["val_top1"]
    assert abs(int8 - fake_quantized) <= 0.03, summary  # training simulated what the IR runs
    assert int8 > 0.3, summary  # chance is 0.1
    deployed = load_deployed(whole / "int8.xml")
    assert (deployed.backend, deployed.precision, deployed.class_names) == ("openvino", "int8", model.class_names)
    images, classes = load_digits_images()
    for n, (image, label) in enumerate(images[:40]):
        (tmp_path / "digits" / classes[label]).mkdir(parents=True, exist_ok=True)
        image.save(tmp_path / "digits" / classes[label] / f"{n}.png")
    scored = cli("eval", "--weights", str(whole / "int8.xml"), "--data", str(tmp_path / "digits"), "--json")
    assert scored.returncode == 0, scored.stderr
    assert json.loads(scored.stdout)["n"] == 40


@pytest.mark.slow
def test_quantization_aware_training_under_torchrun(tmp_path, trained_digits) -> None:
    run = tmp_path / "run"
    args = ["--recipe", "qat", *flags({**QAT, "weights": trained_digits}), "--out", str(run)]
    done = run_cli("train", *args, launcher=TORCHRUN_LAUNCHER, timeout=900)
    assert done.code == 0, done.describe()
    int8 = json.loads((run / "summary.json").read_text())["int8"]
    assert int8["val_images"] == 1258 and int8["val_top1"] > 0.3  # both shards scored, once each


def test_nncf_has_time_to_compile_its_kernels_and_a_users_setting_stands(monkeypatch) -> None:
    """NNCF compiles its fake-quantize kernels at first use, and its 60 s default ran out on a fresh two-core machine
    (the run failed, and its compile, killed with it, left a lock that failed the next run too)."""
    from nncf.torch import extensions

    variable = extensions.EXTENSION_LOAD_TIMEOUT_ENV_VAR
    monkeypatch.setenv(variable, "0")  # NNCF's "wait for ever"
    require_nncf("nncf.torch")
    assert os.environ[variable] == "0"
    monkeypatch.delenv(variable)
    require_nncf("nncf.torch")
    assert int(os.environ[variable]) >= 5 * extensions.DEFAULT_EXTENSION_LOAD_TIMEOUT


def test_quantization_aware_training_refuses_what_it_cannot_do(tmp_path) -> None:
    with pytest.raises(ValueError, match="qat fine-tunes trained weights: pass --weights"):
        trainer(make_config("qat", **TINY, out=str(tmp_path / "a")), progress=False)
    with pytest.raises(ValueError, match="qat does not combine with compile"):
        trainer(make_config("qat", **TINY, compile=True, out=str(tmp_path / "b")), progress=False)
    assert not any(tmp_path.iterdir())  # refused before any run directory was made


def test_a_task_without_calibration_images_refuses_qat_before_anything_is_written(tmp_path) -> None:
    """Quantization-aware training is a hook: it plugs into any task that offers calibration images, and refuses
    one that does not in one line."""
    with pytest.raises(ValueError, match="qat calibrates on the task's images, which the detection task does not"):
        trainer(make_config("ssdlite", data=str(tmp_path), weights="w.safetensors", qat=True, out=str(tmp_path / "r")))
    assert not (tmp_path / "r").exists()


def test_bf16_autocast_on_a_cpu_without_it_says_it_is_emulated(tmp_path, monkeypatch) -> None:
    """An AVX2-only CPU emulates bfloat16: --amp true trained SSDLite 5x slower there than float32 (22 s a step)."""
    import mobilenet.training.trainer as loop

    for native in (False, True):
        monkeypatch.setattr(loop, "bf16_supported", lambda native=native: native)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            trainer(make_config(**TINY, amp=True, out=str(tmp_path / f"run{native}")), progress=False)
        said = [str(w.message) for w in caught if "without native bf16" in str(w.message)]
        assert len(said) == (0 if native else 1) and (native or "--amp false trains in float32" in said[0]), said


def test_threads_and_processes_load_the_same_batches(tmp_path) -> None:
    """``--loader threads`` trains on exactly the batches worker processes give: the same weights, bit for bit."""
    rng = np.random.default_rng(0)
    for label, tint in (("warm", (60, 0, -40)), ("cold", (-40, 0, 60))):
        (tmp_path / "data" / label).mkdir(parents=True)
        for index in range(20):
            pixels = rng.integers(0, 200, (48, 64, 3)) + np.array(tint) + 40
            Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(tmp_path / "data" / label / f"{index}.jpg")
    weights = {}
    for loader in ("processes", "threads"):
        config = make_config(**{**TINY, "epochs": 1, "batch_size": 8, "input_size": 32}, data=str(tmp_path / "data"),
                             workers=2, loader=loader, out=str(tmp_path / loader))  # fmt: skip
        weights[loader] = load_file(train(config, progress=False).run_dir / "last.safetensors")
    assert weights["processes"].keys() == weights["threads"].keys()
    assert all(torch.equal(weights["processes"][name], weights["threads"][name]) for name in weights["threads"])
