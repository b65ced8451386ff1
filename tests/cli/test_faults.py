"""Nothing lost, nothing silent: bad inputs, full disks, kills and concurrent runs, through the real CLI.

Every refusal is checked the same way (tests/helpers/faults.py): exit status 2 (1 for ``predict`` with unreadable
images among readable ones), exactly one non-empty line on stderr, ``mobilenet: error: <why>``, no
traceback, and every file that was there before byte for byte unchanged, with no file added. argparse's
own refusals (a name outside ``choices``, a value its ``type`` rejects) are accepted in argparse's
standard form: its usage block, then one ``mobilenet <command>: error: ...`` line. Errors raised before
training are driven through ``mobilenet.cli.main`` in this process (fast); anything that trains, or may
allocate without bound, runs ``python -m mobilenet`` in a subprocess.

The bad inputs come from hypothesis, derandomized (the same examples on every run) with a few examples
each; the cases the issue names are pinned with ``@example`` or parametrized.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image
from safetensors.torch import load_file

import mobilenet
from mobilenet.weights import load_model, save_weights
from tests.helpers.faults import (
    STEPS_PER_EPOCH,
    TINY_FLAGS,
    Kill,
    Outcome,
    assert_error_ends_the_output,
    assert_refused,
    changes,
    debris,
    kill_at,
    missing_named,
    mobilenet_command,
    pointer,
    quiet_env,
    run_cli,
    run_in_process,
    sha256,
    snapshot,
    start_training,
    step_of,
    text_lines,
)

# Few examples each, the same on every run (CI is deterministic), no time limit per example (CPU shared).
FEW = settings(
    max_examples=4,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Runs that write checkpoints: the tiny run at 16x16 (what is tested does not depend on the resolution, and
# each step is three times faster than at 32x32), a checkpoint every 4 of its 28 steps.
RUN_FLAGS = [*TINY_FLAGS, "--input-size", "16", "--checkpoint-every", "4"]

# A pickle that would create this file if it were ever unpickled with code execution allowed.
PICKLE_RAN = Path(tempfile.gettempdir()) / f"mobilenet-faults-{os.getpid()}-a-pickle-ran"


class RunsCode:
    """Pickles to a call of ``open(PICKLE_RAN, "w")``: a weights loader must never run it."""

    def __reduce__(self):
        return (open, (str(PICKLE_RAN), "w"))


# --- real files to start from ------------------------------------------------------------------------


@cache
def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return mobilenet.mobilenet_v2(width_mult=0.35, num_classes=3, input_size=64)


@cache
def real_safetensors() -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.safetensors"
        save_weights(tiny_model(), path)
        return path.read_bytes()


@cache
def real_state_dict_pth() -> bytes:
    buffer = io.BytesIO()
    torch.save(tiny_model().state_dict(), buffer)
    return buffer.getvalue()


@cache
def image_bytes(kind: str) -> bytes:
    """A readable 48x40 image of random pixels as PNG or JPEG."""
    generator = torch.Generator().manual_seed(7)
    pixels = (torch.rand(40, 48, 3, generator=generator) * 255).byte().numpy()
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=kind)
    return buffer.getvalue()


def write_inputs(folder: Path) -> dict[str, Path]:
    """Around a bad input: a real weights file, a readable image and a two-class image folder."""
    (folder / "real.safetensors").write_bytes(real_safetensors())
    (folder / "good.png").write_bytes(image_bytes("png"))
    for name in ("a", "b"):
        (folder / "data" / name).mkdir(parents=True)
        for n in range(2):
            (folder / "data" / name / f"{n}.png").write_bytes(image_bytes("png"))
    return {"weights": folder / "real.safetensors", "image": folder / "good.png", "data": folder / "data"}


def refused_in_process(
    folder: Path, argv: list[str], codes: tuple[int, ...] = (2,), usage_ok: bool = True
) -> tuple[Outcome, str]:
    """Run ``argv`` in this process against the files in ``folder``: a clean refusal that changed nothing."""
    before = snapshot(folder)
    outcome = run_in_process(argv)
    ran = PICKLE_RAN.exists()
    PICKLE_RAN.unlink(missing_ok=True)
    assert not ran, f"a pickle in a weights file was executed by {argv}"
    line = assert_refused(outcome, codes, usage_ok)
    assert changes(before, snapshot(folder)) == [], f"files touched by {argv}:\n{outcome.describe()}"
    return outcome, line


# --- (i) weights files that are not weights ----------------------------------------------------------


@dataclass(frozen=True)
class BadFile:
    """A file to give where weights are expected: its name and bytes (None: a folder of that name)."""

    name: str
    content: bytes | None

    def write(self, folder: Path) -> Path:
        path = folder / "given" / self.name
        path.parent.mkdir(exist_ok=True)
        if self.content is None:
            path.mkdir()
            (path / "best.safetensors").write_bytes(b"")  # a folder that holds something weights-like
        else:
            path.write_bytes(self.content)
        return path


WEIGHT_SUFFIXES = [".safetensors", ".pth", ".pt", ".bin", ".tflite", ".ckpt", ""]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)


def named(suffixes: list[str], stem: str = "weights") -> st.SearchStrategy[str]:
    return st.sampled_from(suffixes).map(lambda suffix: stem + suffix)


def truncated(whole: Callable[[], bytes], suffix: str) -> st.SearchStrategy[BadFile]:
    """Every prefix but the whole file, the first bytes (the header) most often."""
    cut = st.integers(0, 200) | st.integers(0, 10**9)
    return cut.map(lambda n: BadFile("weights" + suffix, whole()[: n % len(whole())]))


def pickled(value: object, use_torch: bool) -> bytes:
    if not use_torch:
        return pickle.dumps(value)
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


not_tensors = st.one_of(
    json_values,
    st.sampled_from([RunsCode(), {"state_dict": RunsCode()}, {1, 2}, {"features.0.0.weight": [1.0, 2.0]}]),
)
BAD_WEIGHTS: dict[str, st.SearchStrategy[BadFile]] = {
    "random bytes": st.builds(BadFile, named(WEIGHT_SUFFIXES), st.binary(max_size=4096)),
    "truncated safetensors": truncated(real_safetensors, ".safetensors"),
    "truncated state dict": truncated(real_state_dict_pth, ".pth"),
    "pickle of no tensors": st.builds(
        lambda value, use_torch: BadFile("weights.pth", pickled(value, use_torch)), not_tensors, st.booleans()
    ),
    "JSON": st.builds(
        BadFile, named([".json", ".safetensors", ".pth"]), json_values.map(lambda v: json.dumps(v).encode())
    ),
    "empty file": st.builds(BadFile, named(WEIGHT_SUFFIXES), st.just(b"")),
    "folder": st.builds(BadFile, named(WEIGHT_SUFFIXES), st.none()),
    "inference graph": st.builds(
        BadFile,
        named([".onnx", ".xml"], "model"),
        st.binary(max_size=512) | st.just(b'<?xml version="1.0"?>\n<net name="x" version="11"><layers/></net>\n'),
    ),
}


def weights_argv(command: str, weights: Path, files: dict[str, Path], folder: Path) -> list[str]:
    w = str(weights)
    return {
        "predict": ["predict", str(files["image"]), "--weights", w],
        "eval": ["eval", "--weights", w, "--data", str(files["data"]), "--workers", "0"],
        "convert": ["convert", w, str(folder / "out.safetensors")],
        "export": ["export", w, str(folder / "out.onnx")],
        "train": ["train", "--weights", w, *TINY_FLAGS, "--out", str(folder / "run")],
    }[command]


@pytest.mark.parametrize("kind", list(BAD_WEIGHTS))
@pytest.mark.parametrize("command", ["predict", "eval", "convert", "export", "train"])
@FEW
@given(data=st.data())
def test_bad_weights_files_are_refused_in_one_line(tmp_path, command: str, kind: str, data) -> None:
    bad = data.draw(BAD_WEIGHTS[kind], label="weights file")
    with tempfile.TemporaryDirectory(dir=tmp_path) as name:
        folder = Path(name)
        files = write_inputs(folder)
        refused_in_process(folder, weights_argv(command, bad.write(folder), files, folder))


# --- (ii) images that are not images -----------------------------------------------------------------


@dataclass(frozen=True)
class ImageFile:
    name: str
    content: bytes | None  # None: a folder; b"missing": no file at all
    readable: bool

    def write(self, folder: Path, n: int) -> Path:
        path = folder / "images" / f"{n}-{self.name}"
        path.parent.mkdir(exist_ok=True)
        if self.content is None:
            path.mkdir()
        elif self.content != b"missing":
            path.write_bytes(self.content)
        return path


good_images = st.sampled_from(["png", "jpeg"]).map(
    lambda kind: ImageFile(f"good.{kind.replace('jpeg', 'jpg')}", image_bytes(kind), True)
)
bad_images = st.one_of(
    st.builds(
        lambda suffix, content: ImageFile("random" + suffix, content, False),
        st.sampled_from([".jpg", ".png", ".webp"]),
        st.binary(max_size=2048),
    ),
    # Cut within the first half: the pixel data is then certainly incomplete.
    st.builds(
        lambda kind, share: ImageFile(
            f"truncated.{kind}", image_bytes(kind)[: int(len(image_bytes(kind)) * share)], False
        ),
        st.sampled_from(["png", "jpeg"]),
        st.floats(0.0, 0.5),
    ),
    st.just(ImageFile("empty.jpg", b"", False)),
    st.just(ImageFile("folder.jpg", None, False)),
    st.just(ImageFile("missing.jpg", b"missing", False)),
)


@settings(FEW, max_examples=8)
@given(
    images=st.tuples(st.lists(good_images, max_size=2), st.lists(bad_images, min_size=1, max_size=3))
    .map(lambda parts: parts[0] + parts[1])
    .flatmap(st.permutations),
    as_json=st.booleans(),
)
def test_predict_reports_each_unreadable_image_and_predicts_the_rest(tmp_path, images, as_json: bool) -> None:
    with tempfile.TemporaryDirectory(dir=tmp_path) as name:
        folder = Path(name)
        files = write_inputs(folder)
        paths = [image.write(folder, n) for n, image in enumerate(images)]
        before = snapshot(folder)
        argv = ["predict", *map(str, paths), "--weights", str(files["weights"]), "--backend", "eager", "--top", "2"]
        outcome = run_in_process([*argv, "--json"] if as_json else argv)
        assert changes(before, snapshot(folder)) == []
        assert outcome.code == 1 and "Traceback" not in outcome.stderr, outcome.describe()
        bad = [str(p) for p, image in zip(paths, images, strict=True) if not image.readable]
        good = [str(p) for p, image in zip(paths, images, strict=True) if image.readable]
        if as_json:
            results = [json.loads(line) for line in outcome.stdout.splitlines()]
            assert [r["image"] for r in results] == list(map(str, paths)), outcome.describe()
            assert [r["image"] for r in results if "error" in r] == bad
            assert all(len(r["top"]) == 2 for r in results if "error" not in r)
            return
        # One line per unreadable image, naming it; each readable one printed with its top classes.
        lines = text_lines(outcome.stderr)
        assert len(lines) == len(bad) and all(line.startswith(f"{p}: ") for p, line in zip(bad, lines, strict=True)), (
            outcome.describe()
        )
        printed = outcome.stdout.splitlines()
        assert [line for line in printed if not line.startswith(" ")] == good, outcome.describe()
        assert len(printed) == 3 * len(good)


# --- (iii) run folders that cannot be resumed ---------------------------------------------------------


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory) -> Path:
    """A tiny run SIGKILLed after its checkpoint of step 4 (or 8): last.json names a mid-epoch checkpoint."""
    run = tmp_path_factory.mktemp("killed") / "run"
    process = start_training([*RUN_FLAGS, "--out", str(run)])
    what = kill_at(process, run, Kill("step", step=4))
    assert what.startswith("killed") and 4 <= (step_of(run) or 0) < STEPS_PER_EPOCH, what
    return run


def copy_run(run: Path, to: Path) -> Path:
    """A copy of a run folder as if it had been trained there (config.json records where its run is)."""
    shutil.copytree(run, to)
    config = json.loads((to / "config.json").read_text())
    (to / "config.json").write_text(json.dumps({**config, "out": str(to)}, indent=2))
    return to


@dataclass(frozen=True)
class Damage:
    """What is done to a copy of a resumable run folder before ``train --resume``."""

    what: str
    apply: Callable[[Path], None]


def _remove(path: Path) -> None:
    shutil.rmtree(path) if path.is_dir() else path.unlink()


def _edit_pointer(edit: Callable[[dict], object]) -> Callable[[Path], None]:
    def apply(run: Path) -> None:
        data = pointer(run)
        assert data is not None
        (run / "last.json").write_text(json.dumps(edit(data)))

    return apply


def _set(data: dict, key: str, value: object) -> dict:
    return {**data, key: value}


def _replace_named(key: str, content: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def apply(run: Path) -> None:
        path = run / pointer(run)[key]  # type: ignore[index]
        path.write_bytes(content(path.read_bytes()))

    return apply


POINTER_KEYS = ["weights", "state", "epoch", "step_in_epoch", "step"]
not_an_int = st.one_of(
    st.text(max_size=8),
    st.none(),
    st.lists(st.integers(), max_size=2),
    st.just({}),
    st.floats(allow_nan=False).filter(lambda x: not float(x).is_integer()),
)
damages = st.one_of(
    st.just(Damage("missing folder", _remove)),
    st.just(Damage("empty folder", lambda run: [_remove(p) for p in list(run.iterdir())])),
    st.just(Damage("no config.json", lambda run: (run / "config.json").unlink())),
    st.binary(max_size=300).map(
        lambda b: Damage(f"config.json of bytes {b[:20]!r}", lambda run: (run / "config.json").write_bytes(b))
    ),
    st.binary(max_size=300).map(
        lambda b: Damage(f"last.json of bytes {b[:20]!r}", lambda run: (run / "last.json").write_bytes(b))
    ),
    st.integers(0, 150).map(
        lambda n: Damage(
            f"last.json cut at {n}",
            lambda run: (run / "last.json").write_text((run / "last.json").read_text()[: min(n, 140)]),
        )
    ),
    json_values.filter(lambda v: not isinstance(v, dict)).map(
        lambda v: Damage(f"last.json holding {v!r}", lambda run: (run / "last.json").write_text(json.dumps(v)))
    ),
    st.sampled_from(POINTER_KEYS).map(
        lambda key: Damage(
            f"last.json without {key}", _edit_pointer(lambda d: {k: v for k, v in d.items() if k != key})
        )
    ),
    st.tuples(st.sampled_from(POINTER_KEYS), not_an_int).map(
        lambda kv: Damage(f"last.json with {kv[0]}={kv[1]!r}", _edit_pointer(lambda d: _set(d, *kv)))
    ),
    st.tuples(st.sampled_from(["weights", "state"]), st.integers(0, 10**6)).map(
        lambda kv: Damage(
            f"last.json naming a missing {kv[0]} file",
            _edit_pointer(lambda d: _set(d, kv[0], f"checkpoints/step-{kv[1] + 10**7:08d}.{kv[0]}")),
        )
    ),
    st.sampled_from(["weights", "state"]).map(
        lambda key: Damage(f"the {key} file named by last.json deleted", lambda run: (run / pointer(run)[key]).unlink())
    ),
    st.tuples(st.sampled_from(["weights", "state"]), st.floats(0.0, 0.999)).map(
        lambda kv: Damage(f"{kv[0]} file cut to {kv[1]:.0%}", _replace_named(kv[0], lambda b: b[: int(len(b) * kv[1])]))
    ),
    st.tuples(st.sampled_from(["weights", "state"]), st.binary(max_size=1024)).map(
        lambda kv: Damage(f"{kv[0]} file replaced by random bytes", _replace_named(kv[0], lambda _: kv[1]))
    ),
)


@settings(FEW, max_examples=24)
@given(damage=damages)
@example(damage=Damage("missing folder", _remove))
@example(damage=Damage("empty folder", lambda run: [_remove(p) for p in list(run.iterdir())]))
@example(damage=Damage("last.json of bytes", lambda run: (run / "last.json").write_bytes(b'{"weights": ')))
@example(damage=Damage("last.json naming missing files", _edit_pointer(lambda d: _set(d, "state", "checkpoints/x.pt"))))
@example(damage=Damage("state file cut in half", _replace_named("state", lambda b: b[: len(b) // 2])))
def test_damaged_run_folders_are_refused_in_one_line_and_left_as_they_were(tmp_path, killed_run, damage) -> None:
    with tempfile.TemporaryDirectory(dir=tmp_path) as name:
        run = copy_run(killed_run, Path(name) / "run")
        damage.apply(run)
        refused_in_process(Path(name), ["train", "--resume", str(run)])


# --- (iv) flag values no run can use ------------------------------------------------------------------


def _flag(name: str, values: st.SearchStrategy) -> st.SearchStrategy[tuple[str, str]]:
    return values.map(lambda value: (name, str(value)))


bad_train_flags = st.one_of(
    _flag("--batch-size", st.integers(max_value=0)),
    _flag("--epochs", st.integers(max_value=0)),
    _flag("--lr", st.sampled_from(["nan", "inf", "-inf", "0"]) | st.floats(max_value=0, allow_nan=False)),
    _flag("--val-fraction", st.floats(max_value=0) | st.floats(min_value=1) | st.just("nan")),
    _flag("--workers", st.integers(max_value=-1)),
    _flag("--width-mult", st.floats(max_value=0) | st.just("nan")),
    _flag("--device", st.sampled_from(["nonsense", "cpu:x", "tpu", "cuda:abc"])),
    _flag(
        "--task",
        st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12).filter(lambda t: t != "classification"),
    ),
    _flag(
        "--recipe",
        st.text("abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=12).filter(
            lambda t: t not in {"paper", "torchvision", "modern", "finetune", "qat"}
        ),
    ),
)


@settings(FEW, max_examples=30)
@given(flag=bad_train_flags)
@example(flag=("--batch-size", "0"))
@example(flag=("--batch-size", "-3"))
@example(flag=("--epochs", "0"))
@example(flag=("--epochs", "-1"))
@example(flag=("--lr", "nan"))
@example(flag=("--lr", "-1"))
@example(flag=("--val-fraction", "0"))
@example(flag=("--val-fraction", "1.5"))
@example(flag=("--workers", "-1"))
@example(flag=("--task", "tracking"))
@example(flag=("--recipe", "fast"))
@example(flag=("--device", "cuda"))
def test_bad_training_flags_are_refused_before_anything_is_written(tmp_path, flag: tuple[str, str]) -> None:
    name, value = flag
    if name == "--device" and value.startswith("cuda") and torch.cuda.is_available():
        return  # refused only where there is no CUDA device
    with tempfile.TemporaryDirectory(dir=tmp_path) as folder:
        argv = ["train", *TINY_FLAGS, "--out", str(Path(folder) / "run"), f"{name}={value}"]
        _, line = refused_in_process(Path(folder), argv)
        flag_named = name.removeprefix("--") in line or name.removeprefix("--").replace("-", "_") in line
        assert flag_named or name == "--device", f"the error does not name {name}: {line}"


def _limit_memory() -> None:
    # If the width were not refused before allocating, the allocation fails here instead of swapping the machine.
    resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))


def test_a_huge_width_is_refused_before_allocating_with_a_hint(tmp_path) -> None:
    start = time.monotonic()
    outcome = run_cli(
        "train",
        *TINY_FLAGS,
        "--width-mult",
        "100",
        "--out",
        str(tmp_path / "run"),
        timeout=300,
        preexec_fn=_limit_memory,
    )
    line = assert_refused(outcome, codes=(2,), usage_ok=True)
    assert "width" in line and "allocat" not in line.lower(), line  # said before, not an allocator's complaint
    assert "1.4" in line or "--width-mult" in line or "published" in line, f"no hint: {line}"
    assert not (tmp_path / "run").exists() and time.monotonic() - start < 120


@FEW
@given(top=st.integers(max_value=0))
@example(top=0)
@example(top=-1)
def test_predict_refuses_a_top_below_one(tmp_path, top: int) -> None:
    with tempfile.TemporaryDirectory(dir=tmp_path) as name:
        files = write_inputs(Path(name))
        argv = ["predict", str(files["image"]), "--weights", str(files["weights"]), "--backend", "eager"]
        refused_in_process(Path(name), [*argv, f"--top={top}"])


# --- (b) a disk that fills up during a checkpoint write -----------------------------------------------


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory) -> Path:
    """The tiny run with checkpoints every 4 steps, never interrupted: what every interrupted run must end as."""
    run = tmp_path_factory.mktemp("reference") / "run"
    outcome = run_cli("train", *RUN_FLAGS, "--out", str(run))
    assert outcome.code == 0, outcome.describe()
    return run


def assert_resumes_to_the_reference(run: Path, reference: Path) -> None:
    outcome = run_cli("train", "--resume", str(run))
    assert outcome.code == 0 and "Traceback" not in outcome.stderr, outcome.describe()
    assert_same_end(run, reference)


def assert_same_end(run: Path, reference: Path) -> None:
    """Bit for bit the uninterrupted run's weights, and a run folder without debris."""
    ours, theirs = run / "last.safetensors", reference / "last.safetensors"
    if sha256(ours) != sha256(theirs):
        a, b = load_file(ours), load_file(theirs)
        differ = [k for k in b if k not in a or not torch.equal(a[k], b[k])]
        pytest.fail(
            f"last.safetensors differs from the uninterrupted run's ({len(differ)} tensors, first {differ[:3]})"
        )
    assert debris(run) == [] and missing_named(run) == [], (debris(run), missing_named(run))


def assert_last_checkpoint_loads(run: Path) -> int:
    """last.json names complete files: the weights and the state load. Returns its step."""
    last = pointer(run)
    assert last is not None, "the checkpoint written before the disk filled up is gone"
    assert missing_named(run) == [], missing_named(run)
    load_file(run / last["weights"])
    torch.load(run / last["state"], map_location="cpu", weights_only=True)
    return int(last["step"])


def fill_up(path: Path, leave: int) -> None:
    """Fill the file system holding ``path`` until ``leave`` bytes are free."""
    stats = os.statvfs(path.parent)
    free = stats.f_bavail * stats.f_frsize
    with open(path, "wb") as handle:
        chunk = b"\0" * (1 << 20)
        remaining = max(0, free - leave)
        while remaining > 0:
            try:
                remaining -= handle.write(chunk[: min(len(chunk), remaining)])
            except OSError:  # ENOSPC: full already
                break


@pytest.fixture
def small_disk(tmp_path) -> Path:
    """A tmpfs of its own (root only), unmounted after the test."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()}); the file-size-limit case still runs")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _disk_full_run(run: Path, fault: Callable[[subprocess.Popen], None]) -> tuple[Outcome, int]:
    """A run whose disk gives out (``fault``) once its first checkpoint is down: its outcome, the step kept.

    Its output goes to pipes: a log file would be on the full disk, or under the file-size limit, too.
    """
    command = mobilenet_command("train", *RUN_FLAGS, "--out", str(run))
    process = subprocess.Popen(command, env=quiet_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while step_of(run) is None and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert process.poll() is None, "the run ended before its first checkpoint"
    kept = step_of(run) or 0
    fault(process)
    stdout, stderr = process.communicate(timeout=600)
    return Outcome(process.returncode, stdout, stderr), kept


@pytest.mark.slow
@pytest.mark.parametrize("where", ["tmpfs", "file-size-limit"])
def test_a_disk_filling_up_during_a_checkpoint_keeps_the_last_one(request, tmp_path, reference_run, where) -> None:
    rng = random.Random(f"disk-{where}")
    if where == "tmpfs":
        disk = request.getfixturevalue("small_disk")
        leave = rng.randrange(0, 3_300_000)  # free bytes: the next checkpoint (about 3.4 MB) fails in either file
        run = disk / "run"
        outcome, kept = _disk_full_run(run, lambda _: fill_up(disk / "filler", leave))
    else:
        # Each file may grow to ``leave`` bytes (about 1.7 MB each are needed), set on the running process;
        # beyond it writes fail with EFBIG (Python ignores SIGXFSZ).
        leave, run = rng.randrange(0, 1_600_000), tmp_path / "run"
        limit = (leave, resource.RLIM_INFINITY)
        outcome, kept = _disk_full_run(run, lambda p: resource.prlimit(p.pid, resource.RLIMIT_FSIZE, limit))
    line = assert_error_ends_the_output(outcome)
    assert kept >= 4 and assert_last_checkpoint_loads(run) >= kept, line
    assert [name for name in debris(run) if name.endswith(".tmp")] == [], debris(run)
    if where == "tmpfs":
        (disk / "filler").unlink()  # space again: the run goes on from its last checkpoint
    assert_resumes_to_the_reference(run, reference_run)


# --- (c) SIGKILL at seeded random moments -------------------------------------------------------------


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_is_bitwise_equal(tmp_path, reference_run) -> None:
    rng = random.Random(20261130)
    run = tmp_path / "run"
    kills = [
        Kill("write"),  # while the checkpoint after the first is being written
        Kill("fresh", delay=rng.uniform(0.0, 0.8)),  # a resumed process, before it writes anything
        Kill("step", step=rng.randrange(12, STEPS_PER_EPOCH - 2), delay=rng.uniform(0.0, 0.5)),
    ]
    hit = []
    for n, kill in enumerate(kills):
        args = [*RUN_FLAGS, "--out", str(run)] if n == 0 else ["--resume", str(run)]
        hit.append(kill_at(start_training(args), run, kill))
        assert hit[-1].startswith("killed"), hit
        assert missing_named(run) == [], (hit, missing_named(run))
    assert_resumes_to_the_reference(run, reference_run)


@pytest.mark.slow
def test_sigkill_before_the_first_checkpoint_then_resume_starts_over(tmp_path, reference_run) -> None:
    run = tmp_path / "run"
    process = start_training([*RUN_FLAGS, "--out", str(run)])
    what = kill_at(process, run, Kill("fresh"))  # as soon as it has set up: well before step 4
    assert what.startswith("killed") and pointer(run) is None, what
    assert_resumes_to_the_reference(run, reference_run)


# --- (d) run folders: never shared, never reused ------------------------------------------------------

# Both processes import everything first, then call main at the same moment. Their clock (time.strftime, which
# names run folders) reads that moment's second throughout, so the two runs certainly start "in the same second".
SYNCED_MAIN = """
import sys, time
import mobilenet.tasks
from mobilenet.cli import main

moment = float(sys.argv[1])
real_strftime = time.strftime

def strftime(format, t=None):
    return real_strftime(format, time.localtime(moment) if t is None else t)

time.strftime = strftime
time.sleep(max(0.0, moment - time.time()))
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.slow
def test_two_runs_started_in_the_same_second_get_their_own_folders(tmp_path) -> None:
    # 7 steps of 8x8 images: the test is about the folders, not the training.
    fast = [*TINY_FLAGS, "--input-size", "8", "--batch-size", "128"]
    moment = time.time() + 10  # time enough for both to start on a busy machine
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", SYNCED_MAIN, str(moment), "train", *fast, "--seed", str(seed)],
            cwd=tmp_path,
            env=quiet_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (1, 2)
    ]
    outputs = [run.communicate(timeout=600) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    folders = sorted(p.name for p in (tmp_path / "runs").iterdir())
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(moment))
    assert len(folders) == 2 and all(stamp in name for name in folders), (stamp, folders, "same second?")
    for seed, (stdout, stderr) in zip((1, 2), outputs, strict=True):
        mine = [f for f in folders if json.loads((tmp_path / "runs" / f / "config.json").read_text())["seed"] == seed]
        assert len(mine) == 1 and f"runs/{mine[0]}:" in stdout + stderr, (folders, stdout, stderr)
        other = next(f for f in folders if f != mine[0])
        assert f"runs/{other}:" not in stdout + stderr  # each names its own folder only


@pytest.mark.parametrize("existing", ["a finished run", "a folder of other files", "a file"])
def test_out_naming_something_that_exists_is_refused_without_resume(tmp_path, existing: str) -> None:
    out = tmp_path / "out"
    if existing == "a finished run":
        out.mkdir()
        (out / "last.json").write_text(
            json.dumps({"weights": "w", "state": "s", "epoch": 1, "step_in_epoch": 0, "step": 28})
        )
        (out / "config.json").write_text("{}")
    elif existing == "a folder of other files":
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    else:
        out.write_text("mine")
    refused_in_process(tmp_path, ["train", *TINY_FLAGS, "--out", str(out)])


# --- (e) equal tensors, equal files -------------------------------------------------------------------


def test_equal_models_save_byte_equal_files(tmp_path) -> None:
    save_weights(tiny_model(), tmp_path / "a.safetensors")
    save_weights(tiny_model(), tmp_path / "b.safetensors")
    torch.manual_seed(0)
    again = mobilenet.mobilenet_v2(width_mult=0.35, num_classes=3, input_size=64)  # built anew, equal tensors
    save_weights(again, tmp_path / "c.safetensors")
    save_weights(load_model(tmp_path / "a.safetensors"), tmp_path / "d.safetensors")  # round trip
    digests = {name: sha256(tmp_path / f"{name}.safetensors") for name in "abcd"}
    assert len(set(digests.values())) == 1, digests


def test_the_checks_themselves_see_a_traceback_and_debris(tmp_path) -> None:
    # The checks above are only as good as these: a traceback is never a clean refusal, and a stray .tmp is seen.
    with pytest.raises(AssertionError, match="traceback"):
        assert_refused(Outcome("traceback", "", "Traceback (most recent call last):\nKeyError: 'x'\n"))
    with pytest.raises(AssertionError, match="2 non-empty lines"):
        assert_refused(Outcome(2, "", "mobilenet: error: one\nand a second line\n"))
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / ".step-00000004.safetensors.abc.tmp").write_bytes(b"")
    (tmp_path / "checkpoints" / "step-00000004.state.pt").write_bytes(b"")
    assert len(debris(tmp_path)) == 2
