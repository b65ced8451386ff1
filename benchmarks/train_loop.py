"""The trainer's training images/s against a bare PyTorch loop of the same model, batch and optimizer step.

    python benchmarks/train_loop.py [--device cpu --threads 2] [--amp --channels-last] [--steps 20 --repeats 7]

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
``Trainer.epoch``: ``step``, the position update, ``sync`` every ``SYNC_EVERY`` steps, and one ``sync``
at the end of a round (which on CUDA also waits for the device; the bare loop synchronizes there too).

Rounds: after ``--warmup`` steps on each side, each round times ``--steps`` steps of each side and gives
the ratio trainer / bare of the two images/s; the order of the sides alternates from round to round
(ABBA). ``--interleave step`` (CPU only) alternates single steps instead, each timed, so that both sides
of a round see the same load even when it changes within seconds. On a shared machine a round is only
as good as its quiet: two OpenMP threads on two busy cores can run ten times slower. So each side also
records the CPU that others (processes, the hypervisor's steal) took meanwhile, from ``/proc/stat`` less
this process's own CPU time, as a share of all cores; a round is quiet if both sides stayed under
``--quiet``; rounds go on until ``--repeats`` are quiet (at most ``--max-rounds``), and the medians are
over the quiet rounds (over all rounds, flagged, if fewer than 3 were quiet).

``--loader`` adds a third side: the trainer fed by its own DataLoader (augmentation in this process, or in
``--workers`` worker processes), i.e. what ``mobilenet train`` runs, minus evaluation. ``--profile`` then
prints cProfile's top functions for ``--steps`` steps of the trainer and of the bare loop.
The project's goal: trainer >= 0.9x the bare loop on the CPU.
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import io
import itertools
import pstats
import shlex
import statistics
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch
from machine import HelpFormatter, LoadMeter, cpu_name  # benchmarks/machine.py, beside this script
from torch import nn

from mobilenet.tasks import make_config
from mobilenet.tasks import trainer as build_trainer
from mobilenet.training.checkpoint import Position
from mobilenet.training.optim import build_optimizer
from mobilenet.training.trainer import SYNC_EVERY, Trainer

Batch = tuple[torch.Tensor, torch.Tensor, int]  # images, labels, unreadable samples dropped (what collate gives)
GOAL = 0.9


class Side:
    """One way of training, stepped by the benchmark: ``begin``, ``step`` (repeatedly), ``finish``."""

    name: str
    batch_size: int

    def begin(self) -> None:
        """Before a round's first step."""

    def step(self) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        """After a round's last step: wait until the device has done the work."""

    def last_step(self) -> None:
        self.step()
        self.finish()


class TrainerSide(Side):
    """The body of ``Trainer.epoch``'s step loop."""

    def __init__(self, name: str, trainer: Trainer, batches: Iterator[Batch]) -> None:
        self.name, self.trainer, self.batches = name, trainer, batches
        self.batch_size, self.done = trainer.config.batch_size, 0

    def begin(self) -> None:
        self.trainer.net.train()

    def step(self) -> None:
        trainer = self.trainer
        trainer.step(self.batches)
        position = trainer.position
        trainer.position = Position(position.epoch, position.step_in_epoch + 1, position.step + 1)
        self.done += 1
        if self.done % SYNC_EVERY == 0:
            trainer.task.summarize(trainer.sync())

    def finish(self) -> None:
        self.trainer.sync()  # reads the sums back from the device, which has then finished


class BareSide(Side):
    """The plain loop: a copy of the trainer's model, its optimizer step, autocast and memory format."""

    def __init__(self, trainer: Trainer, batches: Iterator[Batch]) -> None:
        config = trainer.config
        self.name, self.batches, self.device, self.batch_size = "bare", batches, trainer.device, config.batch_size
        self.memory_format = torch.channels_last if config.channels_last else torch.preserve_format
        self.model = copy.deepcopy(trainer.model).to(self.device, memory_format=self.memory_format)
        self.optimizer = build_optimizer(config, self.model)
        self.amp, self.dtype, self.smoothing = config.amp, trainer.autocast_dtype, config.options["label_smoothing"]

    def begin(self) -> None:
        self.model.train()

    def step(self) -> None:
        images, labels, _ = next(self.batches)
        images = images.to(self.device, memory_format=self.memory_format, non_blocking=True)
        labels = labels.to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.amp):
            loss = nn.functional.cross_entropy(self.model(images), labels, label_smoothing=self.smoothing)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def finish(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


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


def run_steps(side: Side, steps: int) -> None:
    side.begin()
    for _ in range(steps):
        side.step()
    side.finish()


def one_round(sides: list[Side], steps: int, interleave: str, meter: LoadMeter) -> dict[str, tuple[float, float]]:
    """Each side's (images/s, others' share of the cores) over ``steps`` steps."""
    wall = dict.fromkeys((side.name for side in sides), 0.0)
    others = dict.fromkeys(wall, 0.0)
    if interleave == "round":
        for side in sides:
            wall[side.name], others[side.name] = meter.measure(lambda side=side: run_steps(side, steps))
    else:
        for side in sides:
            side.begin()
        for n in range(steps):
            for side in sides if n % 2 == 0 else sides[::-1]:
                seconds, taken = meter.measure(side.step if n < steps - 1 else side.last_step)
                wall[side.name] += seconds
                others[side.name] += taken
    return {name: (steps * sides[0].batch_size / wall[name], others[name] / (wall[name] * meter.cpus)) for name in wall}


def quiet(row: dict[str, float], limit: float) -> bool:
    return not row["load"] > limit  # an unknown (NaN) load counts as quiet


def profile(label: str, side: Side, steps: int, top: int) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    run_steps(side, steps)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    lines = out.getvalue().splitlines()
    start = next((n for n, line in enumerate(lines) if "ncalls" in line), 0)
    print(f"\n### cProfile: {label}, {steps} steps (sorted by own time)\n\n```")
    print("\n".join(line for line in lines[start:] if line.strip()))
    print("```")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--model", default="mobilenet_v2_050", help="a name of `mobilenet list`")
    parser.add_argument("--input-size", type=int, default=32, help="training resolution")
    parser.add_argument("--small-input", action=argparse.BooleanOptionalAction, default=True,
                        help="stride-1 stem and first stage (the embedded default's setting)")  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=64, help="images per optimizer step")
    parser.add_argument("--steps", type=int, default=20, help="timed optimizer steps per round and side")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per side before the first round")
    parser.add_argument("--repeats", type=int, default=7, help="quiet rounds wanted")
    parser.add_argument("--max-rounds", type=int, default=0, help="give up after this many rounds (0: 3 x --repeats)")
    parser.add_argument("--interleave", choices=["round", "step"], default="round",
                        help="alternate the sides round by round, or step by step (CPU only)")  # fmt: skip
    parser.add_argument("--quiet", type=float, default=0.1,
                        help="quiet round: others took at most this share of the cores during both sides")  # fmt: skip
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=False,
                        help="autocast: bf16 on CPU, the config's amp_dtype on CUDA")  # fmt: skip
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=False, help="NHWC")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers (making the held batches, --loader)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="auto: CUDA if present")
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
            epochs=1000,  # the learning rate stays in its warm-up/cosine range however many steps run
            out=str(Path(out) / "run"),
        )
        trainer = build_trainer(config, progress=False)
        if args.interleave == "step" and trainer.device.type != "cpu":
            parser.error("--interleave step times single steps, which needs a device sync per step: use round")
        held = held_batches(trainer)
        bare = BareSide(trainer, itertools.cycle(held))  # before the trainer's first step: the same initial weights
        sides: list[Side] = [TrainerSide("trainer", trainer, itertools.cycle(held)), bare]
        if args.loader:
            sides.append(TrainerSide("trainer+loader", trainer, loader_batches(trainer)))
        for side in sides:
            run_steps(side, args.warmup)

        meter = LoadMeter()
        rounds: list[dict[str, float]] = []  # images/s of each side, and "load": the largest share others took
        max_rounds = args.max_rounds or 3 * args.repeats
        while len(rounds) < max_rounds and sum(quiet(row, args.quiet) for row in rounds) < args.repeats:
            order = sides if len(rounds) % 2 == 0 else sides[::-1]
            measured = one_round(order, args.steps, args.interleave, meter)
            row = {name: rate for name, (rate, _) in measured.items()}
            rounds.append(row | {"load": max(load for _, load in measured.values())})
            shown = ", ".join(f"{name} {rate:.1f}" for name, rate in rounds[-1].items() if name != "load")
            print(f"round {len(rounds)}: {shown} img/s, others' load {rounds[-1]['load']:.0%}", file=sys.stderr)
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
            f"{args.steps} steps per side and round, interleaved by {args.interleave}, torch {torch.__version__}\n"
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
        median = {side.name: statistics.median(row[side.name] for row in kept) for side in sides}
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
            profile("trainer", sides[0], args.steps, 20)
            profile("bare loop", bare, args.steps, 20)


if __name__ == "__main__":
    main()
