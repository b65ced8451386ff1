"""Helpers of the fault-injection suite (tests/cli/test_faults.py) and of its long sweep
(tests/training/fault_sweep.py).

What "nothing lost, nothing silent" means here, as checks a test can make:

- a refused command exits with status 1 or 2 and says why in exactly one line, ``mobilenet: error: ...``,
  with no traceback; argparse's own refusals (a value outside ``choices``, a flag of the wrong type) are
  accepted in argparse's standard form instead: the usage block (``usage: ...`` and its continuation
  lines), then one line ``mobilenet <command>: error: ...``;
- every file that was there before is byte for byte the same after, and a refused command adds no file;
- a run folder holds no debris: no ``*.tmp`` left by an interrupted write, and no checkpoint file that
  ``last.json`` does not name.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ERROR_PREFIX = "mobilenet: error:"
# argparse's last line: "mobilenet: error: ..." for the top level, "mobilenet train: error: ..." for a command.
USAGE_ERROR = re.compile(r"^mobilenet( [a-z]+)?: error: \S")

# The tiny run of the embedded digits: 28 steps of 32 images, one epoch, no worker processes.
TINY_FLAGS = ["--model", "mobilenet_v2_035", "--batch-size", "32", "--val-fraction", "0.5", "--epochs", "1"]
TINY_FLAGS += ["--workers", "0"]
STEPS_PER_EPOCH = 28  # 898 training images // 32


@dataclass
class Outcome:
    """What a command did: its exit status ("traceback" when an exception escaped main in-process)."""

    code: int | str
    stdout: str
    stderr: str

    def describe(self) -> str:
        return f"exit {self.code}\n--- stdout ---\n{self.stdout[-2000:]}\n--- stderr ---\n{self.stderr[-4000:]}"


def quiet_env() -> dict[str, str]:
    """One thread per process: the machine is shared with other test runs."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def mobilenet_command(*args: str, launcher: Sequence[str] = ()) -> list[str]:
    """``mobilenet ARGS`` as this Python runs it, or as ``launcher`` does (torchrun, say)."""
    return [*(launcher or [sys.executable]), "-m", "mobilenet", *args]


def run_cli(
    *args: str,
    cwd: Path | None = None,
    timeout: float = 600,
    preexec_fn: Callable[[], None] | None = None,
    launcher: Sequence[str] = (),
) -> Outcome:
    """The real CLI in a subprocess (under ``launcher``, if given: see :func:`mobilenet_command`)."""
    done = subprocess.run(
        mobilenet_command(*args, launcher=launcher),
        capture_output=True,
        text=True,
        cwd=cwd,
        env=quiet_env(),
        timeout=timeout,
        preexec_fn=preexec_fn,
    )
    return Outcome(done.returncode, done.stdout, done.stderr)


# Warnings a plain `python -m mobilenet` does not show (Python's default filters hide them outside __main__).
_HIDDEN_WARNINGS = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)


def run_in_process(argv: Sequence[str]) -> Outcome:
    """``mobilenet.cli.main(argv)`` with stdout and stderr captured, as the CLI would print them.

    An exception that escapes ``main`` is what a user sees as a traceback, so it becomes the outcome
    "traceback" rather than a test error; warnings shown by default are added to stderr, as a
    subprocess would print them.
    """
    from mobilenet.cli import main

    out, err = io.StringIO(), io.StringIO()
    code: int | str
    with (
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("default")
        try:
            code = main(list(argv))
        except SystemExit as exit_:  # argparse's refusals and --help
            code = exit_.code if isinstance(exit_.code, int) else 1
        except BaseException:
            code = "traceback"
            err.write(traceback.format_exc())
    shown = [w for w in caught if not issubclass(w.category, _HIDDEN_WARNINGS)]
    warned = "".join(warnings.formatwarning(w.message, w.category, w.filename, w.lineno, w.line) for w in shown)
    return Outcome(code, out.getvalue(), warned + err.getvalue())


def text_lines(text: str) -> list[str]:
    """Non-empty lines, with progress-bar redraws (carriage returns) counted as lines of their own."""
    return [line.strip() for line in re.split(r"[\r\n]+", text) if line.strip()]


def refusal_problem(outcome: Outcome, codes: Sequence[int] = (1, 2), usage_ok: bool = False) -> str | None:
    """Why ``outcome`` is not a clean refusal (None if it is one): see the module's docstring."""
    if "Traceback" in outcome.stderr or outcome.code == "traceback":
        return "a traceback"
    if outcome.code not in codes:
        return f"exit status {outcome.code}, not one of {tuple(codes)}"
    lines = text_lines(outcome.stderr)
    if usage_ok and lines and lines[0].startswith("usage: "):
        if USAGE_ERROR.match(lines[-1]) and not any(line.startswith("mobilenet") for line in lines[1:-1]):
            return None
        return "an argparse refusal that is not the usage block and one error line"
    if len(lines) != 1:
        return f"{len(lines)} non-empty lines on stderr, not one"
    if not lines[0].startswith(ERROR_PREFIX) or len(lines[0]) <= len(ERROR_PREFIX) + 1:
        return f"stderr's line does not start with {ERROR_PREFIX!r} and a reason"
    return None


def assert_refused(outcome: Outcome, codes: Sequence[int] = (1, 2), usage_ok: bool = False) -> str:
    """A clean refusal; returns the error line."""
    problem = refusal_problem(outcome, codes, usage_ok)
    assert problem is None, f"not a one-line refusal ({problem}):\n{outcome.describe()}"
    return text_lines(outcome.stderr)[-1]


def assert_error_ends_the_output(outcome: Outcome, codes: Sequence[int] = (2,)) -> str:
    """A run that fails after it started (progress already on stderr): one error line, the last; no traceback."""
    assert "Traceback" not in outcome.stderr and outcome.code != "traceback", outcome.describe()
    assert outcome.code in codes, outcome.describe()
    lines = text_lines(outcome.stderr)
    errors = [line for line in lines if line.startswith(ERROR_PREFIX)]
    assert len(errors) == 1 and lines[-1] == errors[0], f"the error is not one last line:\n{outcome.describe()}"
    return errors[0]


# --- files -------------------------------------------------------------------------------------------


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root``: a file's sha256, "dir" for a folder, "link -> target" for a link."""
    entries = {}
    for path in sorted(root.rglob("*")):
        name = path.relative_to(root).as_posix()
        if path.is_symlink():
            entries[name] = f"link -> {os.readlink(path)}"
        elif path.is_dir():
            entries[name] = "dir"
        else:
            entries[name] = sha256(path)
    return entries


def changes(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Files changed, removed or added between two snapshots (an added empty folder is no loss, so not listed)."""
    found = [f"changed: {name}" for name in before if name in after and before[name] != after[name]]
    found += [f"removed: {name}" for name in before if name not in after]
    found += [f"added: {name}" for name in after if name not in before and after[name] != "dir"]
    return found


def pointer(run_dir: Path) -> dict | None:
    """``last.json``, or None when there is none (it is replaced atomically, so it is never half-written)."""
    try:
        return json.loads((run_dir / "last.json").read_text())
    except FileNotFoundError:
        return None


def named_files(run_dir: Path) -> set[str]:
    """The files ``last.json`` names, relative to the run folder."""
    last = pointer(run_dir)
    return {value for key, value in (last or {}).items() if key in ("weights", "state")}


def debris(run_dir: Path) -> list[str]:
    """Leftovers of interrupted writes (``*.tmp``) and checkpoint files that ``last.json`` does not name."""
    found = sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*.tmp"))
    named = named_files(run_dir)
    checkpoints = run_dir / "checkpoints"
    if checkpoints.is_dir():
        found += sorted(
            f"{p.relative_to(run_dir).as_posix()} (not named by last.json)"
            for p in checkpoints.iterdir()
            if p.relative_to(run_dir).as_posix() not in named and not p.name.endswith(".tmp")
        )
    return found


def missing_named(run_dir: Path) -> list[str]:
    """Files ``last.json`` names that are not there."""
    return sorted(name for name in named_files(run_dir) if not (run_dir / name).is_file())


# --- killing a run -----------------------------------------------------------------------------------


def step_of(run_dir: Path) -> int | None:
    last = pointer(run_dir)
    return None if last is None else int(last["step"])


def writing(run_dir: Path) -> list[str]:
    """Temporary files of checkpoint writes in progress (atomic writes go to ``.NAME.*.tmp`` beside their target);
    config.json, rewritten when a process starts, is not a checkpoint."""
    found = []
    for folder in (run_dir, run_dir / "checkpoints"):
        with contextlib.suppress(FileNotFoundError), os.scandir(folder) as entries:
            found += [e.name for e in entries if e.name.endswith(".tmp") and not e.name.startswith(".config.json.")]
    return found


@dataclass
class Kill:
    """A kill point: "fresh" (before the first checkpoint a process writes), "write" (while a checkpoint is
    being written), or "step" (at a random moment after ``last.json`` reached ``step``)."""

    kind: str
    step: int = 0
    delay: float = 0.0  # seconds after the moment is reached


def plan_kills(rng: random.Random, count: int, steps: int = STEPS_PER_EPOCH) -> list[Kill]:
    """``count`` kill points drawn from ``rng``: every kind once (when there are three or more), in random order;
    "step" targets increase through the run's ``steps``."""
    kinds = [*(["fresh", "write", "step"] if count >= 3 else []), *rng.choices(["fresh", "write", "step"], k=count)]
    kinds = kinds[:count]
    rng.shuffle(kinds)
    targets = iter(sorted(rng.randrange(1, steps) for _ in kinds))
    return [Kill(kind, step=next(targets), delay=rng.uniform(0.0, 0.3)) for kind in kinds]


def kill_at(process: subprocess.Popen, run_dir: Path, kill: Kill, timeout: float = 300) -> str:
    """Wait for ``kill``'s moment in ``process`` (training into ``run_dir``), SIGKILL it; say what was hit."""
    start, deadline, started_ns = step_of(run_dir), time.monotonic() + timeout, time.time_ns()
    stale = set(writing(run_dir))  # left by an earlier kill: this process has yet to clear them
    moment = None
    while time.monotonic() < deadline and process.poll() is None:
        step = step_of(run_dir)
        if kill.kind == "fresh" and _written_since(run_dir / "config.json", started_ns):
            # The process has (re)written config.json: it is set up and about to train. A little later.
            moment = time.monotonic() + kill.delay
            break
        if kill.kind == "fresh" and set(writing(run_dir)) - stale:
            break  # no config.json written, and already its first checkpoint under way: now
        if kill.kind == "write" and step is not None and (names := sorted(set(writing(run_dir)) - stale)):
            kill_group(process)
            return f"killed while writing {', '.join(names)} (last.json at step {step})"
        if kill.kind == "step" and step is not None and step >= kill.step:
            moment = time.monotonic() + kill.delay
            break
        time.sleep(0.0005 if kill.kind == "write" else 0.01)
    while moment is not None and time.monotonic() < moment and process.poll() is None:
        time.sleep(0.005)
    if process.poll() is not None:
        return f"not killed: the process had ended with status {process.returncode}"
    kill_group(process)
    now = step_of(run_dir)
    where = "before any checkpoint" if now is None else f"at last.json step {now}"
    fresh = " (before this process's first checkpoint)" if now == start else ""
    return f"killed ({kill.kind}) {where}{fresh}"


def _written_since(path: Path, since_ns: int) -> bool:
    try:
        return path.stat().st_mtime_ns >= since_ns
    except FileNotFoundError:
        return False


def start_training(
    args: Sequence[str], cwd: Path | None = None, launcher: Sequence[str] = (), log: Path | None = None
) -> subprocess.Popen:
    """``mobilenet train ARGS`` in the background, in a session of its own (a kill must not reach the caller).

    ``launcher``: what runs ``-m mobilenet`` (default this Python; torchrun, say). ``log``: where stdout and
    stderr go (``LOG.out``, ``LOG.err``); by default they are thrown away.
    """
    command = mobilenet_command("train", *args, launcher=launcher)
    out = open(log.with_suffix(".out"), "w") if log else subprocess.DEVNULL  # noqa: SIM115 (closed below)
    err = open(log.with_suffix(".err"), "w") if log else subprocess.DEVNULL  # noqa: SIM115
    try:
        return subprocess.Popen(command, cwd=cwd, env=quiet_env(), stdout=out, stderr=err, start_new_session=True)
    finally:
        for handle in (out, err):
            if handle is not subprocess.DEVNULL:
                handle.close()


def logged_outcome(process: subprocess.Popen, log: Path, timeout: float = 600) -> Outcome:
    """Wait for a process started with ``log``; what it printed."""
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(process)
    return Outcome(process.returncode, log.with_suffix(".out").read_text(), log.with_suffix(".err").read_text())


def _children() -> dict[int, list[int]]:
    """Parent pid -> child pids, from /proc."""
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ")".
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL a process started by ``start_training`` and every process under it, all at once, as a crash would.

    torchrun starts its workers in sessions of their own, so its process group is not enough: the tree is
    read from /proc first (a killed parent's children are handed to init), then every process in it is killed.
    """
    tree, pids, queue = _children(), [], [process.pid]
    while queue:
        pid = queue.pop()
        pids.append(pid)
        queue += tree.get(pid, [])
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in pids[1:]) and time.monotonic() < deadline:
        time.sleep(0.01)
