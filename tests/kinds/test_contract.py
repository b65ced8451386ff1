"""What every registered kind of model is held to, run over the registry (the test-only keypoint kind included):
through the unchanged trainer, a run killed with SIGKILL resumes bit for bit, two processes under torchrun equal one
accumulating two micro-batches, a diverging run stops in one line keeping its last checkpoint, EMA, bf16, channels-last
and accumulation train together, a bad sample stops a run in one line before it starts; through the unchanged command
line, ``predict`` and ``eval`` run each kind's files, and each kind's files are refused in one line by the commands
and options of the others.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mobilenet import registry
from mobilenet.kinds import ModelKind
from mobilenet.tasks import make_config, train
from mobilenet.tasks import trainer as make_trainer
from mobilenet.training.trainer import TrainingDiverged
from mobilenet.weights.format import save_weights
from tests.helpers.faults import assert_refused, run_in_process
from tests.helpers.runs import (
    assert_sigkill_then_resume_is_bitwise_equal,
    assert_torchrun_matches_accumulation,
    cli,
    flags,
)
from tests.helpers.samples import SAMPLES, Sample
from tests.kinds.plugin import plugin_installed

# In-process runs on one thread, as the subprocesses: the same kernels, the same bits.
pytestmark = pytest.mark.usefixtures("one_thread", "plugin")


@pytest.fixture(scope="module")
def plugin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The test-only keypoint kind, registered in this process and, through an entry point, in every process it
    starts."""
    with plugin_installed(tmp_path_factory.mktemp("plugin")):
        yield


def kind_names() -> list[str]:
    """The kinds the suite runs over: every built-in one, and the test-only kind."""
    return [*(kind.name for kind in registry.kinds()), "keypoints"]


@pytest.fixture(params=kind_names())
def kind(request: pytest.FixtureRequest, plugin: None) -> ModelKind:
    assert request.param in SAMPLES, f"the {request.param} kind has no sample in tests/helpers/samples.py: add one"
    return registry.kind(request.param)


@pytest.fixture
def sample(kind: ModelKind, tmp_path_factory: pytest.TempPathFactory) -> Sample:
    return SAMPLES[kind.name](tmp_path_factory.mktemp(kind.name))


def test_every_registered_kind_has_a_sample() -> None:
    assert {kind.name for kind in registry.kinds()} <= set(SAMPLES), "add a sample to tests/helpers/samples.py"


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_is_bitwise_equal(tmp_path: Path, sample: Sample) -> None:
    assert_sigkill_then_resume_is_bitwise_equal(tmp_path, sample.settings)


@pytest.mark.slow
def test_torchrun_two_processes_match_one_with_accumulation(tmp_path: Path, kind: ModelKind, sample: Sample) -> None:
    settings = {**sample.settings, "epochs": 1, "batch_size": 2 * sample.settings["batch_size"]}
    if "dropout" in {field.name for field in fields(kind.settings)}:
        settings["dropout"] = 0.0  # nothing random that differs between processes
    assert_torchrun_matches_accumulation(tmp_path, settings, sample.metric)


def test_divergence_stops_with_one_line_and_keeps_the_last_checkpoint(tmp_path: Path, sample: Sample) -> None:
    run = tmp_path / "run"
    settings = {**sample.settings, "epochs": 1, "optimizer": "sgd", "lr": 1e12, "checkpoint_every": 1}
    settings["ema_decay"] = None
    with pytest.raises(TrainingDiverged) as stopped:
        train(make_config(**settings, out=str(run)), progress=False)
    assert "\n" not in str(stopped.value) and "last checkpoint in" in str(stopped.value), stopped.value
    pointer = json.loads((run / "last.json").read_text())
    assert all(torch.isfinite(t.float()).all() for t in load_file(run / pointer["weights"]).values())


def test_ema_bf16_channels_last_and_accumulation_train_together(tmp_path: Path, sample: Sample) -> None:
    settings = {**sample.settings, **sample.amp, "epochs": 1, "ema_decay": 0.99, "amp": True, "channels_last": True}
    trainer = make_trainer(make_config(**settings, accum_steps=2, out=str(tmp_path / "run")), progress=False)
    result = trainer.run()
    assert result.model is trainer.ema.module  # the average ships
    assert all(torch.isfinite(p).all() for p in result.model.parameters())
    assert all(torch.isfinite(torch.tensor(v)) for v in result.val.metrics.values()), result.val.metrics
    convs = [m for m in trainer.model.modules() if isinstance(m, torch.nn.Conv2d) and m.weight.dim() == 4]
    assert convs[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_a_bad_sample_stops_mobilenet_train_in_one_line(tmp_path: Path, sample: Sample) -> None:
    says = sample.damage(Path(sample.settings["data"]))
    out = tmp_path / "run"
    line = assert_refused(run_in_process(["train", *flags(sample.settings), "--out", str(out)]))
    assert says in line, line
    assert not out.exists()


@pytest.fixture
def weights(sample: Sample, tmp_path: Path) -> Path:
    """A small model of the kind, saved as our safetensors."""
    model = registry.create_model(**sample.model)
    model.class_names = sample.class_names or model.class_names
    path = tmp_path / f"{registry.kind_of(model).name}.safetensors"
    save_weights(model, path)
    return path


def test_predict_and_eval_run_every_kind_through_the_same_commands(kind: ModelKind, sample: Sample, weights: Path):
    images = [str(path) for path in sample.images]
    predicted = cli("predict", *images, "--weights", str(weights), "--json")
    assert predicted.returncode == 0, predicted.stderr
    results = [json.loads(line) for line in predicted.stdout.splitlines()]
    assert [result["image"] for result in results] == images and not any("error" in r for r in results)
    people = cli("predict", *images, "--weights", str(weights))
    assert people.returncode == 0 and all(image in people.stdout for image in images), people.stderr
    if kind.command != "predict":  # its own command runs it the same
        own = cli(kind.command, *images, "--weights", str(weights), "--json")
        assert own.returncode == 0 and own.stdout == predicted.stdout, own.stderr

    scored = cli("eval", "--weights", str(weights), "--data", str(sample.labelled), "--json", "--workers", "0")
    assert scored.returncode == 0, scored.stderr
    report = json.loads(scored.stdout)
    assert report["n"] > 0 and report["skipped"] == 0, report


def test_the_commands_and_options_of_other_kinds_refuse_its_files_in_one_line(kind: ModelKind, weights: Path):
    others = [other for other in registry.kinds() if other is not kind]
    for other in others:
        if other.command not in ("predict", kind.command):
            line = assert_refused(run_in_process([other.command, "image.jpg", "--weights", str(weights)]))
            assert f"holds a {kind.name} model, not a {other.name} one" in line, line
            assert f"`mobilenet {kind.command}`" in line, line
        own = {option.name for option in kind.eval_options}
        for option in (o for o in other.eval_options if o.name not in own):
            value = [] if option.flag else ["1"]
            argv = ["eval", "--weights", str(weights), "--data", ".", option.flag_name, *value]
            line = assert_refused(run_in_process(argv))
            assert f"{option.flag_name} is for" in line and f"holds a {kind.name} one" in line, line


def test_scoring_and_predicting_leave_a_model_in_its_own_mode(kind: ModelKind, sample: Sample) -> None:
    """A model scored mid-training goes on training: every kind's evaluation and prediction restore its mode."""
    config = make_config(**sample.settings)
    task = registry.kind(config.task).call("task")
    model, data = task.prepare(config)
    model.train()
    task.evaluate(model, data.val, 2, 0, torch.device("cpu"))
    assert model.training
    results = kind.call("predict", model, [str(path) for path in sample.images])
    assert model.training and len(results) == len(sample.images)
