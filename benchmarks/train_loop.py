"""The trainer's training images/s against a bare PyTorch loop of the same model, batch and optimizer step.

    python benchmarks/train_loop.py [--device cpu --threads 2] [--amp --channels-last] [--steps 20 --repeats 5]

What is measured: only the loop's own overhead. Both sides train the same model (a copy of the
trainer's, taken before its first step) on the same batches: the trainer's own training batches of
epoch 0 (its sampler, augmentation and collate), made once and held in memory (pinned on CUDA), so that
neither side pays for image decoding or augmentation. Both move a batch to the device in the same
memory format, run under the same autocast, and take the same optimizer step (the trainer's
``build_optimizer``: its parameter groups, momentum and weight decay). The bare loop is

    for images, labels in batches:
        loss = cross_entropy(model(images), labels, label_smoothing=...)  # the recipe's smoothing
        loss.backward(); opt.step(); opt.zero_grad()

How the trainer is timed: ``Trainer.epoch`` is a loop of ``Trainer.step`` (forward and loss by the task,
backward, optimizer, schedule, EMA), then the position update and, every ``SYNC_EVERY`` steps, a read of
the running metrics from the device (``Trainer.sync``); after the last step of an epoch come evaluation
and the checkpoint, which are per-epoch costs, not the step loop's. Timing whole epochs would mix those
(and the DataLoader's start-up) into a 22-step digits epoch, so this times exactly the per-step body of
``Trainer.epoch`` over ``--steps`` steps: ``step`` + the position update + ``sync`` every ``SYNC_EVERY``
steps, with one final ``sync`` (which on CUDA also waits for the device; the bare loop synchronizes at
the same point). After ``--warmup`` steps on each side, ``--repeats`` rounds alternate which side runs
first (ABBA), so that drifting load on a shared machine hits both alike; each round gives a ratio
trainer / bare, and the medians are reported. On a shared machine a round is only as good as its quiet:
two OpenMP threads on two busy cores can run ten times slower. So each side of each round also records
the CPU that other processes (and the hypervisor's steal) took meanwhile, from ``/proc/stat`` less this
process's own CPU time, as a fraction of all cores; a round is quiet if both sides stayed under
``--quiet``, rounds continue until ``--repeats`` quiet ones (at most ``--max-rounds``), and the medians
are over the quiet rounds (over all rounds, with a warning, if fewer than 3 were quiet).

``--loader`` adds a third side: the trainer fed by its own DataLoader (augmentation in this process, or in
``--workers`` worker processes), i.e. what ``mobilenet train`` runs, minus evaluation. ``--profile`` then
prints cProfile's top functions for ``--steps`` steps of the trainer and of the bare loop.
The project's goal: trainer >= 0.9x the bare loop on the CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import cProfile
import io
import itertools
import math
import os
import platform
import pstats
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import nn

from mobilenet.tasks import trainer as build_trainer
from mobilenet.training.checkpoint import Position
from mobilenet.training.optim import build_optimizer
from mobilenet.training.recipes import make_config
from mobilenet.training.trainer import SYNC_EVERY, Trainer

Batch = tuple[torch.Tensor, torch.Tensor, int]  # images, labels, unreadable samples dropped (what collate gives)
GOAL = 0.9


class LoadMeter:
    """The share of all cores that other processes (and the hypervisor) took while a block of code ran."""

    def __init__(self) -> None:
        self.cpus = os.cpu_count() or 1
        self.tick = os.sysconf("SC_CLK_TCK")

    def busy(self) -> float | None:
        try:
            values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        except (OSError, ValueError):  # not Linux: unknown
            return None
        return (sum(values) - values[3] - values[4]) / self.tick  # all but idle and iowait, in seconds

    def measure(self, run: Callable[[], float]) -> tuple[float, float]:
        """``run()``'s result and the others' load meanwhile (0: a quiet machine; NaN: unknown)."""
        busy, own, start = self.busy(), time.process_time(), time.perf_counter()
        result = run()
        wall, own = time.perf_counter() - start, time.process_time() - own
        after = self.busy()
        if busy is None or after is None:
            return result, math.nan
        return result, max(after - busy - own, 0.0) / (wall * self.cpus)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def held_batches(trainer: Trainer) -> list[Batch]:
    """One epoch of the trainer's own training batches, in memory (pinned for a CUDA device)."""
    batches = [(images, labels, skipped) for images, labels, skipped in trainer.loader(0, 0)]
    if trainer.device.type == "cuda":
        batches = [(images.pin_memory(), labels.pin_memory(), skipped) for images, labels, skipped in batches]
    return batches


def loader_batches(trainer: Trainer) -> Iterator[Batch]:
    """The trainer's DataLoader, epoch after epoch: what ``Trainer.epoch`` iterates."""
    for epoch in itertools.count():
        yield from trainer.loader(epoch, 0)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def trainer_steps(trainer: Trainer, batches: Iterator[Batch], steps: int) -> float:
    """Images/s of ``steps`` steps of the trainer's epoch loop body (see the module docstring)."""
    trainer.net.train()
    synchronize(trainer.device)
    start = time.perf_counter()
    for done in range(1, steps + 1):
        trainer.step(batches)
        position = trainer.position
        trainer.position = Position(position.epoch, position.step_in_epoch + 1, position.step + 1)
        if done % SYNC_EVERY == 0:
            trainer.task.summarize(trainer.sync())
    trainer.sync()  # reads the device's sums back: the device has finished the round
    return steps * trainer.config.batch_size / (time.perf_counter() - start)


class BareLoop:
    """The plain loop: the same model (a copy), optimizer step, autocast and memory format."""

    def __init__(self, trainer: Trainer) -> None:
        config = trainer.config
        self.device, self.batch_size = trainer.device, config.batch_size
        self.memory_format = torch.channels_last if config.channels_last else torch.preserve_format
        self.model = copy.deepcopy(trainer.model).to(self.device, memory_format=self.memory_format)
        self.optimizer = build_optimizer(config, self.model)
        self.amp, self.dtype, self.smoothing = config.amp, trainer.autocast_dtype, config.label_smoothing

    def steps(self, batches: Iterator[Batch], steps: int) -> float:
        self.model.train()
        synchronize(self.device)
        start = time.perf_counter()
        for _ in range(steps):
            images, labels, _ = next(batches)
            images = images.to(self.device, memory_format=self.memory_format, non_blocking=True)
            labels = labels.to(self.device, non_blocking=True)
            with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.amp):
                loss = nn.functional.cross_entropy(self.model(images), labels, label_smoothing=self.smoothing)
            loss.backward()
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        synchronize(self.device)
        return steps * self.batch_size / (time.perf_counter() - start)


def profile(label: str, run: Callable[[], float], top: int) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    run()
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    print(f"\n### cProfile: {label} (sorted by own time)\n\n```")
    lines = out.getvalue().splitlines()
    start = next((n for n, line in enumerate(lines) if "ncalls" in line), 0)
    print("\n".join(line for line in lines[max(start - 2, 0) :] if line.strip()))
    print("```")


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The docstring as written, and every option's default."""


def quiet(row: dict[str, float], limit: float) -> bool:
    return not row["load"] > limit  # an unknown (NaN) load counts as quiet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--model", default="mobilenet_v2_050")
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--small-input", action=argparse.BooleanOptionalAction, default=True,
                        help="stride-1 stem and first stage (the embedded default's setting)")  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20, help="timed optimizer steps per round and side")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per side before the first round")
    parser.add_argument("--repeats", type=int, default=5, help="quiet rounds wanted, alternating which side runs first")
    parser.add_argument("--max-rounds", type=int, default=0, help="give up after this many rounds (0: 3 x --repeats)")
    parser.add_argument("--quiet", type=float, default=0.1,
                        help="quiet round: others took at most this share of the cores during both sides")  # fmt: skip
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=False,
                        help="autocast: bf16 on CPU, the config's amp_dtype on CUDA")  # fmt: skip
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=False)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers (making the held batches, --loader)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (CPU); 0 = PyTorch's default")
    parser.add_argument("--loader", action="store_true", help="also time the trainer fed by its own DataLoader")
    parser.add_argument("--profile", action="store_true", help="then cProfile --steps steps of each side")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as out:
        config = make_config(
            "modern",  # no data: the embedded default (scikit-learn digits), with these settings
            model=args.model,
            width_mult=None,
            input_size=args.input_size,
            small_input=args.small_input,
            batch_size=args.batch_size,
            amp=args.amp,
            channels_last=args.channels_last,
            workers=args.workers,
            device=args.device,
            ema_decay=None,
            epochs=1000,  # the schedule's lr stays in its warm-up/cosine range however many steps run
            out=str(Path(out) / "run"),
        )
        trainer = build_trainer(config, progress=False)
        bare = BareLoop(trainer)  # before the trainer's first step: the same initial weights
        held = held_batches(trainer)
        trainer_batches, bare_batches = itertools.cycle(held), itertools.cycle(held)
        sides: dict[str, Callable[[], float]] = {
            "trainer": lambda: trainer_steps(trainer, trainer_batches, args.steps),
            "bare": lambda: bare.steps(bare_batches, args.steps),
        }
        if args.loader:
            fed = loader_batches(trainer)
            sides["trainer+loader"] = lambda: trainer_steps(trainer, fed, args.steps)

        trainer_steps(trainer, trainer_batches, args.warmup)
        bare.steps(bare_batches, args.warmup)
        if args.loader:
            trainer_steps(trainer, fed, args.warmup)
        meter, names = LoadMeter(), list(sides)
        rounds: list[dict[str, float]] = []  # images/s of each side, and "load": the larger of the sides' loads
        max_rounds = args.max_rounds or 3 * args.repeats
        while len(rounds) < max_rounds and sum(quiet(row, args.quiet) for row in rounds) < args.repeats:
            order = names if len(rounds) % 2 == 0 else names[::-1]
            row, loads = {}, []
            for name in order:
                row[name], load = meter.measure(sides[name])
                loads.append(load)
            rounds.append(row | {"load": max(loads)})
        kept = [row for row in rounds if quiet(row, args.quiet)]
        which = f"median of {len(kept)} quiet rounds"
        if len(kept) < 3:
            kept, which = rounds, f"median of all {len(rounds)} rounds (under 3 quiet: rerun when quieter)"

        device = trainer.device
        where = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
        threads = f", {torch.get_num_threads()} threads" if device.type == "cpu" else ""
        print(f"\n## Training loop: trainer vs bare loop ({device.type}: {where}{threads})\n")
        print(
            f"{args.model} @{args.input_size} small_input={args.small_input}, batch {args.batch_size}, "
            f"amp={args.amp} ({trainer.autocast_dtype if args.amp else 'fp32'}), channels_last={args.channels_last}, "
            f"{args.steps} steps x {args.repeats} rounds, torch {torch.__version__}\n"
        )
        extra = " trainer+loader img/s | loader/bare |" if args.loader else ""
        print(f"| round | others' load | trainer img/s | bare img/s | trainer/bare |{extra}")
        print("|---|---:|---:|---:|---:|" + ("---:|---:|" if args.loader else ""))
        for n, row in enumerate(rounds, 1):
            mark = "" if quiet(row, args.quiet) else " (busy)"
            cells = f"| {n}{mark} | {row['load']:.0%} | {row['trainer']:.1f} | {row['bare']:.1f} | "
            cells += f"{row['trainer'] / row['bare']:.3f} |"
            if args.loader:
                cells += f" {row['trainer+loader']:.1f} | {row['trainer+loader'] / row['bare']:.3f} |"
            print(cells)
        ratios = [row["trainer"] / row["bare"] for row in kept]
        median = {name: statistics.median(row[name] for row in kept) for name in names}
        cells = f"| **{which}** | | {median['trainer']:.1f} | {median['bare']:.1f} | "
        cells += f"**{statistics.median(ratios):.3f}** |"
        if args.loader:
            loader_ratio = statistics.median(row["trainer+loader"] / row["bare"] for row in kept)
            cells += f" {median['trainer+loader']:.1f} | {loader_ratio:.3f} |"
        print(cells)
        quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
        verdict = "meets" if statistics.median(ratios) >= GOAL else "MISSES"
        print(
            f"\ntrainer/bare ({which}): median {statistics.median(ratios):.3f}, quartiles "
            f"{quartiles[0]:.3f}-{quartiles[2]:.3f}, range {min(ratios):.3f}-{max(ratios):.3f} "
            f"({verdict} the goal >= {GOAL}x)"
        )
        print(f"\ncommand: `python {shlex.join(['benchmarks/train_loop.py', *sys.argv[1:]])}`")

        if args.profile:
            with contextlib.redirect_stderr(io.StringIO()):
                profile("trainer", sides["trainer"], 20)
                profile("bare loop", sides["bare"], 20)


if __name__ == "__main__":
    main()
