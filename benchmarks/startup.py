"""Start-up and one-shot latency: whole commands, each timed in fresh processes, and what ``predict`` spends.

    python benchmarks/startup.py [--runs 5] [--image IMG] [--many 16]

Whole commands: each runs ``--runs`` times in a fresh process (after ``--warmup`` untimed runs, which
fill the page cache), round-robin over the commands with the order rotated every round, so that changing
load on a shared machine spreads over all of them. Wall time is ``time.perf_counter`` around
``subprocess.Popen`` to exit; CPU time (user + system) and peak memory come from the kernel
(``os.wait4``), and CPU time is the steadier figure when other processes compete for the cores.
On a shared machine a run is only as good as its quiet, so each run also records the share of all cores
that other processes (and the hypervisor's steal) took meanwhile (``/proc/stat`` less the run's own CPU
time); a run is quiet under ``--quiet``. Rounds go on until every command has ``--runs`` quiet runs (at
most ``--max-rounds``); reported: the median wall time of the quiet runs (of all runs, marked, if fewer
than 3 were quiet), the min wall time, the median CPU time and the peak memory.

Commands: ``import torch``, ``import mobilenet``, ``import mobilenet; mobilenet.create_model('mobilenet_v2')``,
``mobilenet --help``, ``mobilenet list``, a script that loads W and runs one eager forward (``load_model``,
batch 1 at 224), and ``mobilenet predict`` of one JPEG with float weights W of V2 1.0 (written by
``save_weights(mobilenet.mobilenet_v2(), W)`` into a temporary folder) on the default backend (``auto``,
which picks by the number of images where the CLI does), ``--backend onnxruntime`` (export, then a
session), ``--backend torch`` and ``--backend eager``; then the same four with ``--many`` images, whose
difference from one image gives each path's cost per extra image.

In-process (after the commands; PyTorch's default threads): one eager forward of V2 1.0 at 224, batch 1
(the first call of a new model, then warm calls); reading the weights file; for each backend, the time
``deploy`` takes to build it (for ONNX Runtime: the ONNX export and the session) and its forward time
per image at batch 1 and at batch ``--many`` (``predict`` runs batches of up to 32); and decoding plus
preprocessing one JPEG. Each is the median of the quiet ones of ``--repeats`` calls, with the min beside
it. The break-even is the number of images from which ONNX Runtime's build cost is repaid by its faster
forward: ``(build_onnxruntime - build_x) / (per_image_x - per_image_onnxruntime)``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from machine import HelpFormatter, LoadMeter, cpu_name  # benchmarks/machine.py, beside this script

IMAGENETTE_VAL = Path("/work/shared/data/imagenette/val")
HELP_TARGET_S = 0.5
PATHS = {  # predict's --backend flags
    "default": [],
    "onnxruntime": ["--backend", "onnxruntime"],
    "torch": ["--backend", "torch"],
    "eager": ["--backend", "eager"],
}
IMPORT_TARGET = 1.1  # import mobilenet within 10% of import torch


METER = LoadMeter()


@dataclass
class Command:
    name: str
    argv: list[str]
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    load: list[float] = field(default_factory=list)

    def quiet_runs(self, limit: float) -> int:
        return sum(quiet(load, limit) for load in self.load)

    def median(self, limit: float) -> tuple[float, bool]:
        """The median wall time of the quiet runs, or of all runs (False) if fewer than 3 were quiet."""
        kept = [wall for wall, load in zip(self.wall, self.load, strict=True) if quiet(load, limit)]
        return (statistics.median(kept), True) if len(kept) >= 3 else (statistics.median(self.wall), False)

    @property
    def shown(self) -> str:
        return shlex.join(["python" if arg == sys.executable else arg for arg in self.argv])


def quiet(load: float, limit: float) -> bool:
    return not load > limit  # an unknown (NaN) load counts as quiet


def run_once(argv: Sequence[str]) -> tuple[float, float, float, float]:
    """Wall seconds, CPU seconds (user + system, children included), peak RSS in MB and others' load."""
    with tempfile.TemporaryFile() as errors:
        busy, own = METER.busy(), time.process_time()
        start = time.perf_counter()
        process = subprocess.Popen(list(argv), stdout=subprocess.DEVNULL, stderr=errors)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            errors.seek(0)
            raise RuntimeError(f"{shlex.join(argv)} exited {process.returncode}:\n{errors.read().decode()[-2000:]}")
    cpu = usage.ru_utime + usage.ru_stime
    return wall, cpu, usage.ru_maxrss / 1024, METER.share(busy, wall, cpu + time.process_time() - own)


def default_images(count: int) -> list[Path]:
    """The first file of each ImageNette validation class, then the second of each, ...: ``count`` JPEGs."""
    if not IMAGENETTE_VAL.is_dir():
        raise SystemExit(f"{IMAGENETTE_VAL} not found: pass --image (a JPEG) and --images (several)")
    folders = [sorted(p for p in folder.iterdir() if p.is_file()) for folder in sorted(IMAGENETTE_VAL.iterdir())]
    ordered = [files[n] for n in range(max(map(len, folders))) for files in folders if n < len(files)]
    return ordered[:count]


@dataclass(frozen=True)
class Timing:
    median: float  # of the quiet calls (of all, if none was quiet)
    best: float
    quiet: int  # how many calls were quiet

    def __str__(self) -> str:
        return f"{self.median:.4f} | {self.best:.4f}"


def timing(call: Callable[[], object], repeats: int, limit: float) -> Timing:
    """``call()`` timed ``repeats`` times in this process."""
    samples = []
    for _ in range(repeats):
        busy, own, start = METER.busy(), time.process_time(), time.perf_counter()
        call()
        wall = time.perf_counter() - start
        samples.append((wall, METER.share(busy, wall, time.process_time() - own)))
    kept = [wall for wall, load in samples if quiet(load, limit)] or [wall for wall, _ in samples]
    return Timing(statistics.median(kept), min(wall for wall, _ in samples), len(kept))


def auto_picks(many: int) -> None:
    """What the default backend resolves to for one image and for ``many`` (where the CLI picks by count)."""
    try:
        from mobilenet.inference.backends import backend_for, pick_backend
    except ImportError:  # a version that does not pick by the number of images
        return
    picks = {n: pick_backend(backend_for(n, "auto", "fp32"), "fp32") for n in (1, many)}
    print(f"- the default backend runs 1 image on {picks[1]}, {many} images on {picks[many]}")


def in_process(weights: Path, image: Path, many: list[Path], backends: list[str], repeats: int, limit: float) -> None:
    import torch

    import mobilenet
    from mobilenet.data.images import preprocess
    from mobilenet.inference.deploy import deploy
    from mobilenet.weights import load_model

    print(f"\n## In-process (torch {torch.__version__}, {torch.get_num_threads()} threads)\n")
    model = mobilenet.create_model("mobilenet_v2").eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.inference_mode():
        first = timing(lambda: model(x), 1, limit)
        warm = timing(lambda: model(x), repeats * 2, limit)
    load = timing(lambda: load_model(weights), repeats, limit)
    pre = model.preprocessing
    decode = timing(lambda: preprocess(str(image), pre), repeats * 2, limit)
    print("| step | median s | min s |\n|---|---:|---:|")
    print(f"| eager forward V2 1.0 @224, batch 1, first call of a new model | {first} |")
    print(f"| eager forward V2 1.0 @224, batch 1, warm | {warm} |")
    print(f"| load_model(W.safetensors) | {load} |")
    print(f"| decode + preprocess one JPEG | {decode} |")

    loaded = load_model(weights)
    one = torch.stack([preprocess(str(image), pre)])
    batch = torch.stack([preprocess(str(path), pre) for path in many])
    rows: dict[str, tuple[Timing, Timing, Timing]] = {}

    def built(backend: str) -> tuple[Timing, Callable[[torch.Tensor], object]]:
        made: list[Callable[[torch.Tensor], object]] = []
        return timing(lambda: made.append(deploy(loaded, backend)), repeats, limit), made[-1]

    for backend in backends:
        build, runner = built(backend)
        runner(one)  # the first call of a fresh runner (ONNX Runtime allocates, oneDNN picks kernels)
        runner(batch)
        per_one = timing(lambda runner=runner: runner(one), repeats * 2, limit)
        whole = timing(lambda runner=runner: runner(batch), repeats, limit)
        per_many = Timing(whole.median / len(many), whole.best / len(many), whole.quiet)
        rows[backend] = (build, per_one, per_many)
    print(f"\n| backend | build (deploy) s: median | min | forward s/image, batch 1: median | min | "
          f"forward s/image, batch {len(many)}: median | min |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|")
    for backend, (build, per_one, per_many) in rows.items():
        print(f"| {backend} | {build} | {per_one} | {per_many} |")
    default = backends[0]  # the path whose export is to be repaid
    build0, one0, many0 = rows[default]
    print()
    for backend in backends[1:]:
        build, per_one, per_many = rows[backend]
        cost = build0.median - build.median
        for label, mine, theirs in (("batch 1", one0, per_one), (f"batch {len(many)}", many0, per_many)):
            gain = theirs.median - mine.median
            verdict = f"pays off from {max(cost / gain, 0):.0f} images" if gain > 0 else "never pays off"
            print(
                f"- {default} vs {backend} ({label}): building costs {cost:+.2f} s, the forward saves "
                f"{gain * 1000:.1f} ms/image: {verdict}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="quiet timed runs wanted of each command")
    parser.add_argument("--max-rounds", type=int, default=0, help="rounds at most (0: 3 x --runs)")
    parser.add_argument("--quiet", type=float, default=0.1, help="quiet: others took at most this share of the cores")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs of each command first")
    parser.add_argument("--image", type=Path, help="the JPEG to predict; default: ImageNette's first val image")
    parser.add_argument("--many", type=int, default=32, help="images of the many-image predict runs (0: skip)")
    parser.add_argument("--repeats", type=int, default=5, help="in-process timings: calls per median")
    parser.add_argument("--skip-in-process", action="store_true", help="whole commands only")
    args = parser.parse_args()

    python = sys.executable
    cli = shutil.which("mobilenet", path=str(Path(python).parent)) or shutil.which("mobilenet")
    if cli is None:
        raise SystemExit("the `mobilenet` command is not installed next to this Python: pip install -e .")
    images = default_images(max(args.many, 1)) if args.image is None or args.many else []
    image = args.image or images[0]
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "W.safetensors"
        make = "import mobilenet; from mobilenet.weights import save_weights; "
        make += f"save_weights(mobilenet.mobilenet_v2(), {str(weights)!r})"
        subprocess.run([python, "-c", make], check=True)
        forward = (
            "import torch; from mobilenet.weights import load_model; "
            f"model = load_model({str(weights)!r}).eval(); torch.inference_mode()(model)(torch.randn(1, 3, 224, 224))"
        )
        predict = [cli, "predict", str(image), "--weights", str(weights)]
        commands = [
            Command("import torch", [python, "-c", "import torch"]),
            Command("import mobilenet", [python, "-c", "import mobilenet"]),
            Command("create_model", [python, "-c", "import mobilenet; mobilenet.create_model('mobilenet_v2')"]),
            Command("--help", [cli, "--help"]),
            Command("list", [cli, "list"]),
            Command("script: load W, one eager forward", [python, "-c", forward]),
            *(Command(f"predict 1 ({name})", predict + flags) for name, flags in PATHS.items()),
        ]
        if args.many:
            many = [cli, "predict", *[str(path) for path in images], "--weights", str(weights)]
            commands += [Command(f"predict {args.many} ({name})", many + flags) for name, flags in PATHS.items()]
        for command in commands:
            for _ in range(args.warmup):
                run_once(command.argv)
        rounds = 0
        while rounds < (args.max_rounds or 3 * args.runs):
            wanted = [c for c in commands if rounds < args.runs or c.quiet_runs(args.quiet) < args.runs]
            if not wanted:
                break
            shift = rounds % len(wanted)
            for command in wanted[shift:] + wanted[:shift]:
                wall, cpu, rss, load = run_once(command.argv)
                command.wall.append(wall)
                command.cpu.append(cpu)
                command.rss_mb.append(rss)
                command.load.append(load)
            rounds += 1

        print(f"\n## Start-up: whole commands in fresh processes ({cpu_name()}, {os.cpu_count()} CPUs)\n")
        print(f"{rounds} round-robin rounds after {args.warmup} warm-up run(s); image {image}\n")
        print("| command | runs (quiet) | wall median s | wall min s | CPU median s | peak RSS MB |")
        print("|---|---:|---:|---:|---:|---:|")
        for command in commands:
            median, from_quiet = command.median(args.quiet)
            print(
                f"| `{command.name}` | {len(command.wall)} ({command.quiet_runs(args.quiet)}) | "
                f"{median:.3f}{'' if from_quiet else ' (all runs)'} | {min(command.wall):.3f} | "
                f"{statistics.median(command.cpu):.3f} | {statistics.median(command.rss_mb):.0f} |"
            )
        by_name = {command.name: command for command in commands}
        print("\nfull command lines:")
        for command in commands:
            shown = command.shown.replace(str(weights), "W.safetensors").replace(cli, "mobilenet")
            print(f"- {command.name}: `{shown[:300]}{' ...' if len(shown) > 300 else ''}`")

        def med(name: str) -> float:
            return by_name[name].median(args.quiet)[0]

        print()
        for name in ("--help", "list"):
            ok = med(name) < HELP_TARGET_S
            print(f"- `mobilenet {name}`: {med(name):.3f} s ({'meets' if ok else 'MISSES'} < {HELP_TARGET_S} s)")
        ratio = med("import mobilenet") / med("import torch")
        verdict = "meets" if ratio <= IMPORT_TARGET else "MISSES"
        print(f"- `import mobilenet` / `import torch`: {ratio:.2f} ({verdict} <= {IMPORT_TARGET})")
        if args.many:
            fixed, slope = {}, {}
            for name in PATHS:
                one, lots = med(f"predict 1 ({name})"), med(f"predict {args.many} ({name})")
                slope[name] = (lots - one) / (args.many - 1)
                fixed[name] = one - slope[name]
                print(f"- predict ({name}): {fixed[name]:.2f} s fixed + {slope[name] * 1000:.1f} ms per image")
            for other in ("torch", "eager"):
                cost, gain = fixed["onnxruntime"] - fixed[other], slope[other] - slope["onnxruntime"]
                verdict = f"pays off from {max(cost / gain, 0):.0f} images" if gain > 0 else "never pays off"
                print(
                    f"- whole commands, onnxruntime vs {other}: {cost:+.2f} s up front, {gain * 1000:.1f} ms saved "
                    f"per image: {verdict}"
                )
            auto_picks(args.many)

        if not args.skip_in_process:
            backends = ["onnxruntime", "torch", "eager"]
            in_process(weights, image, [Path(p) for p in images] or [image], backends, args.repeats, args.quiet)
    print(f"\ncommand: `python {shlex.join(['benchmarks/startup.py', *sys.argv[1:]])}`")


if __name__ == "__main__":
    main()
