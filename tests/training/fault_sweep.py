"""SIGKILL a training run at many seeded random moments, resume it each time, and count what survived.

    python -m tests.training.fault_sweep [--kills 8] [--seed 0] [--epochs 2] [--modes one torchrun] [--keep DIR]

The long version of tests/cli/test_faults.py's kill test. For each mode (one process, and
``python -m torch.distributed.run --standalone --nproc_per_node=2 -m mobilenet train``) it trains the tiny
digits run (MobileNetV2 0.35 at 16x16, batch 32, 28 steps an epoch, a checkpoint every 4 steps) once without
interruption, then again, killed ``--kills`` times: before a process's first checkpoint, while a checkpoint
is being written (a ``.tmp`` beside it), or at a random moment after a random step, each process (torchrun
and its workers together) with SIGKILL, and resumed with ``mobilenet train --resume`` after every kill until
the run ends. It prints, per mode:

- kills survived / tried: a kill is survived when ``last.json`` still names complete files after it and a
  later process resumes and gets on (``last.json`` moves forward, or the run ends);
- files lost: files ``last.json`` names that are missing after a kill, and checkpoints that went backwards
  or vanished;
- debris found: in the finished run folder, ``*.tmp`` files and checkpoint files ``last.json`` does not name;
- tracebacks seen: in the output of every process, killed ones included;
- whether the final ``last.safetensors`` is bit for bit the uninterrupted run's.

Exit status 0 when every kill was survived and nothing was lost, left behind or shown as a traceback.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers.faults import (
    STEPS_PER_EPOCH,
    TINY_FLAGS,
    debris,
    kill_at,
    logged_outcome,
    missing_named,
    plan_kills,
    sha256,
    start_training,
    step_of,
    text_lines,
)
from tests.helpers.runs import TORCHRUN_LAUNCHER

MODES = {"one": ("one process", []), "torchrun": ("torchrun, 2 processes", TORCHRUN_LAUNCHER)}


@dataclass
class Sweep:
    mode: str
    tried: int = 0
    survived: int = 0
    lost: list[str] = field(default_factory=list)
    debris: list[str] = field(default_factory=list)
    tracebacks: int = 0
    equal: bool | None = None
    log: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def clean(self) -> bool:
        return self.survived == self.tried and not self.lost and not self.debris and not self.tracebacks and self.equal

    def summary(self) -> str:
        equal = {True: "yes", False: "NO", None: "not reached"}[self.equal]
        return (
            f"{self.mode}: kills survived {self.survived} / {self.tried}; files lost {len(self.lost)}; "
            f"debris found {len(self.debris)}; tracebacks seen {self.tracebacks}; "
            f"final weights equal to the uninterrupted run's: {equal} ({self.seconds:.0f} s)"
        )


def last_line(log: Path) -> str:
    return (text_lines(log.with_suffix(".err").read_text()) or ["(nothing on stderr)"])[-1]


def sweep(mode: str, kills: int, seed: int, epochs: int, folder: Path) -> Sweep:
    name, launcher = MODES[mode]
    result, start = Sweep(name), time.monotonic()
    flags = [*TINY_FLAGS, "--input-size", "16", "--checkpoint-every", "4", "--epochs", str(epochs)]
    logs = folder / "logs"
    logs.mkdir(parents=True)

    def read_log(log: Path) -> None:
        result.tracebacks += log.with_suffix(".err").read_text().count("Traceback")

    # The run never interrupted, under the same launcher: what every killed run must end as.
    reference = folder / "reference"
    process = start_training([*flags, "--out", str(reference)], cwd=folder, launcher=launcher, log=logs / "reference")
    code = logged_outcome(process, logs / "reference").code
    read_log(logs / "reference")
    if code != 0:
        result.log.append(f"the uninterrupted run failed (exit {code}): {last_line(logs / 'reference')}")
        return result

    run = folder / "run"
    plan = plan_kills(random.Random(f"{seed}-{mode}"), kills, STEPS_PER_EPOCH * epochs)
    # Kills not yet survived: a kill is survived once a later process resumes and gets on (last.json moves
    # forward, or the run ends); a process that fails by itself leaves every pending kill unsurvived.
    pending: list[int] = []
    for n, kill in enumerate([*plan, None]):
        log = logs / f"process-{n}"
        before = step_of(run)
        args = [*flags, "--out", str(run)] if n == 0 else ["--resume", str(run)]
        process = start_training(args, cwd=folder, launcher=launcher, log=log)
        if kill is None:  # the last process: no kill, the run ends
            code, what = logged_outcome(process, log).code, "no kill: runs to the end"
        else:
            what = kill_at(process, run, kill)
            code = None if what.startswith("killed") else process.returncode
        read_log(log)
        if code not in (None, 0):
            result.log.append(f"process {n} failed (exit {code}): {last_line(log)}")
            break
        after = step_of(run)
        if code == 0 or (after is not None and (before is None or after > before)):
            result.survived += len(pending)
            pending = []
        if code == 0:
            if kill is not None:
                result.log.append(f"kill {n + 1} ({kill.kind}): {what}")
            break
        assert kill is not None
        result.tried += 1
        lost = [f"after kill {n + 1}: {name} is named by last.json but missing" for name in missing_named(run)]
        if before is not None and (after is None or after < before):
            lost.append(f"after kill {n + 1}: last.json went from step {before} to {after}")
        result.lost += lost
        result.log.append(f"kill {n + 1} ({kill.kind}): {what}")
        if not lost:
            pending.append(n)

    final = run / "last.safetensors"
    if final.is_file() and step_of(run) == STEPS_PER_EPOCH * epochs:
        result.equal = sha256(final) == sha256(reference / "last.safetensors")
        result.debris = debris(run)
    result.seconds = time.monotonic() - start
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=8, help="kills per mode (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="draws the kill moments (default 0)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of 28 steps (default 2)")
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    parser.add_argument("--keep", type=Path, help="keep the run folders and logs here (default: a temporary folder)")
    args = parser.parse_args()
    if args.kills < 0 or args.epochs < 1:
        parser.error("--kills must be >= 0 and --epochs >= 1")
    root = args.keep or Path(tempfile.mkdtemp(prefix="fault-sweep-"))
    print(
        f"fault sweep: {args.kills} kills per mode, seed {args.seed}, {args.epochs} epochs of {STEPS_PER_EPOCH} steps"
    )
    results = []
    try:
        for mode in args.modes:
            result = sweep(mode, args.kills, args.seed, args.epochs, root / mode)
            results.append(result)
            print(result.summary())
            for line in [*result.log, *result.lost, *(f"debris: {name}" for name in result.debris)]:
                print(f"  {line}")
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0 if results and all(r.clean for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
