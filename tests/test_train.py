"""Training for real: data handling, recipes, resumable runs killed with SIGKILL, torchrun with two processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from torch.optim.swa_utils import AveragedModel

from mobilenet.classification.data import Augmentation, LabelledImages, load_digits_images, scan_folder
from mobilenet.classification.task import calibration_batch
from mobilenet.cli import build_parser
from mobilenet.cli.train import train_config
from mobilenet.inference.deploy import load_deployed
from mobilenet.nn.preprocessing import Preprocessing
from mobilenet.tasks import train, trainer
from mobilenet.training.optim import ema_update, lr_factor
from mobilenet.training.recipes import EMBEDDED_DEFAULT, RECIPES, make_config
from mobilenet.training.sampling import ShardedSampler
from mobilenet.weights import load_model
from tests.conftest import TINY, cli, flags


def test_recipes_are_the_papers_and_references() -> None:
    paper = RECIPES["paper"]
    assert (paper.optimizer, paper.rmsprop_alpha, paper.momentum) == ("rmsprop", 0.9, 0.9)
    assert paper.scaled_lr() == pytest.approx(0.045)  # per 96 images, at 96
    assert make_config("paper", batch_size=192).scaled_lr() == pytest.approx(0.09)
    assert (paper.lr_decay, paper.weight_decay, paper.label_smoothing) == (0.98, 4e-5, 0.1) and paper.ema_decay
    tv = RECIPES["torchvision"]
    assert (tv.optimizer, tv.lr, tv.lr_decay, tv.weight_decay) == ("sgd", 0.045, 0.98, 4e-5)
    assert RECIPES["finetune"].backbone_lr_mult < 1
    assert make_config() == EMBEDDED_DEFAULT  # no data: the embedded default
    with pytest.raises(ValueError, match="unknown training settings"):
        make_config(learning_rate=1)
    with pytest.raises(ValueError, match="unknown recipe"):
        make_config("fast")


def test_schedules() -> None:
    paper = make_config("paper", epochs=10)
    assert [lr_factor(paper, s, 10) for s in (0, 9, 10, 25)] == pytest.approx([1, 1, 0.98, 0.98**2])
    modern = make_config("modern", data="x", epochs=10, warmup_epochs=1)
    assert lr_factor(modern, 0, 10) == pytest.approx(0.1) and lr_factor(modern, 9, 10) == pytest.approx(1)
    assert lr_factor(modern, 55, 10) == pytest.approx(0.5) and lr_factor(modern, 100, 10) == pytest.approx(0)


def test_cli_overrides_only_given_flags_and_none_is_one() -> None:
    parse = build_parser().parse_args
    assert train_config(parse(["train", "--data", "x"])).ema_decay == RECIPES["modern"].ema_decay
    assert train_config(parse(["train", "--data", "x", "--ema-decay", "none"])).ema_decay is None
    assert train_config(parse(["train", "--recipe", "paper", "--lr", "0.1"])).lr_batch == 96


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


def write_images(folder: Path, count: int, size: tuple[int, int] = (48, 40)) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(len(str(folder)))
    for i in range(count):
        pixels = (torch.rand(size[1], size[0], 3, generator=generator) * 255).byte().numpy()
        Image.fromarray(pixels).save(folder / f"{i}.jpg")


def test_dataset_errors_before_training(tmp_path) -> None:
    write_images(tmp_path / "one" / "cat", 4)
    with pytest.raises(ValueError, match="single class"):
        train(make_config(data=str(tmp_path / "one"), **TINY), progress=False)
    (tmp_path / "one" / "dog").mkdir()
    with pytest.raises(ValueError, match=r"class folder .*dog has no images"):
        scan_folder(tmp_path / "one")
    result = cli("train", "--data", str(tmp_path / "missing"))
    assert result.returncode == 2 and "dataset folder not found" in result.stderr


def test_bad_images_never_kill_a_run(tmp_path) -> None:
    for split, count in (("train", 16), ("val", 4)):
        for name in ("a", "b"):
            write_images(tmp_path / split / name, count)
    bad = tmp_path / "train" / "a"
    (bad / "corrupt.jpg").write_bytes(b"not an image at all")
    (bad / "truncated.jpg").write_bytes((bad / "0.jpg").read_bytes()[:300])
    Image.new("L", (50, 50), 128).save(bad / "gray.png")
    Image.new("CMYK", (50, 50), (10, 20, 30, 0)).save(bad / "cmyk.jpg")
    Image.new("P", (50, 50)).save(bad / "palette.png")
    Image.new("RGB", (4, 4)).save(bad / "tiny.png")
    config = make_config(
        "modern",
        data=str(tmp_path),
        out=str(tmp_path / "run"),
        input_size=32,
        small_input=True,
        model="mobilenet_v2_035",
        batch_size=8,
        epochs=1,
        workers=0,
        ema_decay=None,
    )
    with pytest.warns(UserWarning, match="skipped"):
        result = train(config, progress=False)
    assert result.skipped_images == {"train": 3, "val": 0}  # corrupt, truncated, tiny; the rest converted
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["skipped_images"] == {"train": 3, "val": 0} and summary["train_images"] == 38


@pytest.mark.slow
def test_embedded_default_run_directory(tmp_path) -> None:
    run = tmp_path / "run"
    result = cli("train", "--epochs", "1", "--out", str(run), timeout=600)
    assert result.returncode == 0, result.stderr
    assert "validation loss" in result.stdout and "top1" in result.stdout
    assert {p.name for p in run.iterdir()} >= {
        "config.json",
        "metrics.csv",
        "last.json",
        "best.safetensors",
        "last.safetensors",
        "summary.json",
        "curves.png",
        "checkpoints",
    }
    assert json.loads((run / "config.json").read_text())["model"] == "mobilenet_v2_050"
    rows = (run / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,lr,train_loss") and len(rows) == 2
    model = load_model(run / "best.safetensors")
    assert model.class_names == [str(d) for d in range(10)] and model.config.small_input
    again = cli("train", "--epochs", "1", "--out", str(run))
    assert again.returncode == 2 and "already holds a run" in again.stderr


def kill_mid_epoch_then_resume(tmp_path: Path, args: list[str], name: str = "") -> tuple[Path, Path]:
    """The run of ``args`` twice: whole, and SIGKILLed mid-epoch then resumed. Returns both directories."""
    whole, run = tmp_path / f"{name}whole", tmp_path / f"{name}killed"
    full = cli("train", *args, "--out", str(whole), timeout=900)
    assert full.returncode == 0, full.stderr
    process = subprocess.Popen(
        [sys.executable, "-m", "mobilenet", "train", *args, "--out", str(run)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    steps_per_epoch = json.loads((whole / "last.json").read_text())["step"]
    deadline = time.time() + 600
    while time.time() < deadline and process.poll() is None:
        pointer = run / "last.json"
        if pointer.exists() and json.loads(pointer.read_text())["step"] >= 12:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    position = json.loads((run / "last.json").read_text())
    assert position["epoch"] == 0 and 0 < position["step_in_epoch"] < steps_per_epoch  # mid-epoch

    resumed = cli("train", "--resume", str(run), timeout=900)
    assert resumed.returncode == 0, resumed.stderr
    a, b = load_file(whole / "last.safetensors"), load_file(run / "last.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    strip = [line.rsplit(",", 2)[0] for line in (whole / "metrics.csv").read_text().splitlines()]
    assert strip == [line.rsplit(",", 2)[0] for line in (run / "metrics.csv").read_text().splitlines()]
    return whole, run


@pytest.fixture(scope="module")
def trained_digits(tmp_path_factory) -> Path:
    """Float weights to fine-tune with qat: two TINY epochs (after one, BatchNorm's statistics score chance)."""
    run = train(make_config(**TINY, workers=0, out=str(tmp_path_factory.mktemp("float") / "run")), progress=False)
    assert run.val.top1 > 0.3
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
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    command = [*torchrun, "-m", "mobilenet", "train", "--recipe", "qat", *flags({**QAT, "weights": trained_digits})]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*command, "--out", str(run)], capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    int8 = json.loads((run / "summary.json").read_text())["int8"]
    assert int8["val_images"] == 1258 and int8["val_top1"] > 0.3  # both shards scored, once each


def test_quantization_aware_training_calibrates_on_evaluation_images_spread_through_the_set() -> None:
    images, classes = load_digits_images()
    augmented = LabelledImages(images[:100], classes, Preprocessing(input_size=32), Augmentation(scale=(0.1, 0.2)))
    plain = LabelledImages(images[:100], classes, Preprocessing(input_size=32))
    assert calibration_batch(augmented, count=300).shape == (100, 3, 32, 32)  # all of them when there are fewer
    every_third = calibration_batch(augmented, count=30)
    assert len(every_third) == 30 and torch.equal(every_third[1], plain[3][0])  # not augmented


def test_quantization_aware_training_refuses_what_it_cannot_do(tmp_path) -> None:
    with pytest.raises(ValueError, match="qat fine-tunes trained weights: pass --weights"):
        trainer(make_config("qat", **TINY, out=str(tmp_path / "a")), progress=False)
    with pytest.raises(ValueError, match="qat does not combine with compile"):
        trainer(make_config("qat", **TINY, compile=True, out=str(tmp_path / "b")), progress=False)
    assert not any(tmp_path.iterdir())  # refused before any run directory was made


@pytest.mark.slow
def test_nan_loss_stops_and_keeps_the_last_checkpoint(tmp_path) -> None:
    run = tmp_path / "run"
    settings = {**TINY, "lr": 1e12, "warmup_epochs": 0, "checkpoint_every": 1, "workers": 0}
    result = cli("train", *flags(settings), "--out", str(run), timeout=600)
    assert result.returncode == 2
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("mobilenet: error: the ") and "last checkpoint in" in last_line
    pointer = json.loads((run / "last.json").read_text())
    weights = load_file(run / pointer["weights"])
    assert all(torch.isfinite(t.float()).all() for t in weights.values())


@pytest.mark.slow
def test_torchrun_two_processes_match_one(tmp_path) -> None:
    settings = {**TINY, "epochs": 1, "dropout": 0.0, "label_smoothing": 0.0, "workers": 0, "ema_decay": None}
    worker = Path(__file__).with_name("ddp_worker.py")

    def run(launcher: list[str], name: str, overrides: dict) -> dict[str, torch.Tensor]:
        (tmp_path / name).mkdir()
        command = [*launcher, str(worker), str(tmp_path / name), json.dumps({**settings, **overrides})]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900, cwd=worker.parents[1])
        assert done.returncode == 0, done.stderr[-3000:]
        return {f.stem: torch.load(f) for f in (tmp_path / name).glob("rank*.pt")}

    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    ddp = run(torchrun, "ddp", {"out": str(tmp_path / "ddp-run")})
    one = run([sys.executable], "one", {"accum_steps": 2, "out": str(tmp_path / "one-run")})
    for name in ddp["rank0"]:
        assert torch.equal(ddp["rank0"][name], ddp["rank1"][name]), name
        torch.testing.assert_close(ddp["rank0"][name], one["rank0"][name], rtol=1e-4, atol=1e-5)
    assert (tmp_path / "ddp-run" / "metrics.csv").exists()  # written once, by rank 0


@pytest.mark.shared
def test_finetune_from_tflite_keeps_the_pretrained_function(tmp_path) -> None:
    from tests.conftest import shared_path

    source = shared_path("imagenette")
    for split, count in (("train", 16), ("val", 10)):
        for synset in ("n01440764", "n02102040"):  # tench, English springer
            (tmp_path / split / synset).mkdir(parents=True)
            for image in sorted((source / split / synset).iterdir())[:count]:
                (tmp_path / split / synset / image.name).symlink_to(image)
    weights = shared_path("weights/mobilenet_v2_1.0_224_quant.tflite")
    config = make_config("finetune", weights=str(weights), data=str(tmp_path), input_size=160, batch_size=8,
                         epochs=2, workers=0, out=str(tmp_path / "run"))  # fmt: skip
    run = trainer(config, progress=False)
    assert run.model.config.padding == "tf_same" and run.model.classifier[1].out_features == 2
    assert run.model.preprocessing.mean[0] == pytest.approx(128 / 255)  # the weights' own normalisation
    result = run.run()
    assert result.val.top1 >= 0.9, result.val  # 20 real validation images, two classes


def test_bf16_autocast_channels_last_and_accumulation_train(tmp_path) -> None:
    settings = {**TINY, "epochs": 1, "amp": True, "channels_last": True, "accum_steps": 2, "workers": 0}
    result = train(make_config(**settings, out=str(tmp_path / "run")), progress=False)
    assert result.steps == 898 // 32  # digits split in half: 898 training images, global batches of 32
    assert all(torch.isfinite(p).all() for p in result.model.parameters())
    stem = result.model.features[0][0].weight
    assert stem.is_contiguous(memory_format=torch.channels_last)
