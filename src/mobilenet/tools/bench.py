"""Speed side by side: every inference path of one model, timed in one process, against a reference.

The contenders are a reference implementation as users run it (torchvision's or timm's MobileNetV2,
eager; or Google's runtime on the TFLite file the weights came from), our eager model,
:func:`~mobilenet.inference.optimize.optimize`, and every :func:`~mobilenet.inference.deploy.deploy` backend x
precision installed. Any model of the package runs (a classifier, a Mobile DeepLabv3, an SSD detector, timed to
its raw outputs): only its ``kind`` decides whether torchvision or timm has the same network. They run interleaved,
round by round, so that load from other processes hits all alike; each ratio is one of the medians reported beside
it over the reference's, so that the columns always agree. The yardstick is the compute floor: 2 x MAdds at the
fp32 matrix-multiply rate measured here, at the same thread count.
"""

from __future__ import annotations

import importlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mobilenet.complexity.profile import module_cost
from mobilenet.data.images import ImageSource
from mobilenet.inference.backends import available_backends
from mobilenet.inference.deploy import GRAPHS, deploy, graph_info, weight_bytes
from mobilenet.inference.export import export_onnx, is_detector
from mobilenet.inference.optimize import bf16_supported, optimize
from mobilenet.nn.config import ModelConfig
from mobilenet.nn.model import MobileNet, check_batch_fits
from mobilenet.registry import create_model, kind_of_file, load, load_deployed
from mobilenet.runtimes.litert import LiteRTFile
from mobilenet.runtimes.onnxruntime import ort_session
from mobilenet.tools.timing import Runner, median_and_p90, time_paths, torch_threads
from mobilenet.weights.format import MOBILENET

REFERENCES = ("auto", "torchvision", "timm", "none")  # or the path of a .tflite file: Google's runtime on it


@dataclass(frozen=True)
class Contender:
    name: str
    spec: tuple[str, ...]  # how to build it again in a fresh process (peak memory): see ``build``
    run: Runner
    size_bytes: int  # what it runs from: weights in memory, or the ONNX / OpenVINO file
    # The path's own input made from the float batch, once and untimed (LiteRT's quantized NHWC pixels).
    feed: Callable[[torch.Tensor], Any] | None = None

    def inputs(self, x: torch.Tensor) -> tuple[Any, Any]:
        """What this path is timed on: ``x``'s first image alone, and the whole batch."""
        return (self.feed(x[:1]), self.feed(x)) if self.feed else (x[:1].clone(), x)


@dataclass
class PathResult:
    name: str
    b1_ms: float  # batch-1 latency, median of every call of every round
    b1_p90_ms: float
    throughput: float  # images/s at the benchmark's batch size, median over rounds
    b1_speedup: float  # the reference's b1_ms over this one's (the reference: the first contender)
    throughput_speedup: float  # this throughput over the reference's
    b1_floor_ratio: float  # latency / floor latency: 1.0 would be the fp32 compute floor
    throughput_floor_ratio: float  # floor throughput / throughput
    size_mb: float  # of what it runs from: weights in memory, or the ONNX / OpenVINO file
    peak_memory_mb: float | None = None  # peak RSS of a fresh process running only this path (after its build)


@dataclass
class BenchResult:
    arch: str
    width_mult: float
    resolution: int
    threads: int
    batch: int
    madds: int
    gemm_gflops: float
    floor_b1_ms: float
    floor_throughput: float
    reference: str
    notes: list[str]
    paths: list[PathResult]
    baseline_memory_mb: float | None = None  # RSS of the same fresh process with the model built, no path
    kind: str = MOBILENET  # the model's, as its weights file says: "mobilenet", "deeplabv3", "ssd"

    def to_dict(self) -> dict:
        return asdict(self)


def gemm_gflops(threads: int, size: int = 1024, repeats: int = 20) -> float:
    """The fp32 matrix-multiply rate of this CPU at ``threads`` threads (GFLOP/s, best of ``repeats``).

    MobileNet's work is 1x1 convolutions (GEMMs) plus memory-bound depthwise ones, so no fp32 path
    beats 2 x MAdds at this rate: the compute floor.
    """
    a, b = torch.randn(size, size), torch.randn(size, size)
    best = float("inf")
    with torch_threads(threads):
        for _ in range(repeats):
            start = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def _timm_name(width_mult: float) -> str:
    return f"mobilenetv2_{round(width_mult * 100):03d}"


def reference_model(kind: str, width_mult: float) -> tuple[str, str, nn.Module] | None:
    """(kind, label, model) of the reference implementation, eager with random weights, as users run it.

    ``auto`` takes torchvision, else timm, else none (then ours eager, numerically the same network, is
    the reference). A named reference that cannot be imported is an error.
    """
    if kind not in REFERENCES:
        raise ValueError(f"unknown reference {kind!r}: use one of {', '.join(REFERENCES)}")
    for name in ("torchvision", "timm") if kind == "auto" else (kind,) if kind != "none" else ():
        try:
            if name == "torchvision":
                tv = importlib.import_module("torchvision.models")
                return name, "torchvision mobilenet_v2 eager", tv.mobilenet_v2(width_mult=width_mult).eval()
            timm = importlib.import_module("timm")
            return name, f"timm {_timm_name(width_mult)} eager", timm.create_model(_timm_name(width_mult)).eval()
        except Exception as error:  # a CUDA-only wheel fails with RuntimeError or OSError, not ImportError
            if kind != "auto":
                raise ValueError(f"reference {name} does not load here ({error}); use --reference none") from error
    return None


def _eager(model: nn.Module) -> Runner:
    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return model(x)

    return run


def is_tflite(reference: str) -> bool:
    return Path(reference).suffix == ".tflite"


def pick_reference(reference: str, model: nn.Module) -> tuple[str | None, str | None]:
    """The reference to time ``model`` against (a library's name, a .tflite file, or None: ours eager), and a note.

    torchvision and timm have MobileNet classifiers only: another kind of model has none of theirs.
    """
    if is_tflite(reference):
        return reference, None
    kind = getattr(model, "kind", MOBILENET)
    if kind != MOBILENET and reference in ("torchvision", "timm"):
        raise ValueError(f"{reference} has no {kind} model to compare with: use reference 'none' or a .tflite file")
    found = reference_model("none" if kind != MOBILENET else reference, model.config.width_mult)
    if found is None and reference == "auto":
        missing = (
            "neither torchvision nor timm loads here" if kind == MOBILENET else f"torchvision and timm have no {kind}"
        )
        return None, f"{missing}: ours eager (the same network) is the reference"
    return (found[0] if found else None), None


def build(spec: tuple[str, ...], model: nn.Module, threads: int, calibration: ImageSource | None) -> Contender:
    """One contender from its spec: ("reference", "torchvision", "timm" or a .tflite file), ("eager",),
    ("optimize",), ("optimize", "compile"), ("onnxruntime-session",), ("deploy", backend, precision), or ("graph",
    path): an exported file in its runtime as it was saved (ONNX, OpenVINO IR, ExecuTorch program; a TFLite file in
    Google's runtime, fed as the file takes it)."""
    if spec[0] == "graph" and is_tflite(spec[1]):
        litert = LiteRTFile(spec[1], threads)
        return Contender(f"{Path(spec[1]).name} (LiteRT)", spec, litert, litert.size_bytes, litert.feed)
    if spec[0] == "graph":
        graph = load_deployed(spec[1], threads=threads)
        name = f"{Path(spec[1]).name} ({graph.backend} {graph.precision})"
        return Contender(name, spec, graph, graph.size_bytes)
    if spec[0] == "reference" and is_tflite(spec[1]):
        litert = LiteRTFile(spec[1], threads)
        return Contender(f"LiteRT {Path(spec[1]).name}", spec, litert, litert.size_bytes, litert.feed)
    if spec[0] == "reference":
        _, label, reference = reference_model(spec[1], model.config.width_mult)  # type: ignore[misc]
        return Contender(label, spec, _eager(reference), weight_bytes(reference))
    if spec[0] == "eager":
        return Contender("ours eager (NCHW)", spec, _eager(model), weight_bytes(model))
    if spec[0] == "onnxruntime-session":  # the exported file in a session of its own, as users run it
        with tempfile.TemporaryDirectory() as directory:
            report = export_onnx(model, Path(directory) / "model.onnx")
            session = ort_session(report.path, threads)
        return Contender(
            "plain ONNX Runtime session", spec, lambda x: session.run(None, {"images": x.numpy()})[0], report.file_size
        )
    if spec[0] == "optimize":
        compiled = len(spec) > 1
        optimized = optimize(model, compile=compiled)
        name = "optimize (folded, channels-last" + (", compile + freezing)" if compiled else ")")
        return Contender(name, spec, optimized, weight_bytes(optimized))
    _, backend, precision = spec
    if precision == "int8" and calibration is None:  # random weights, speed only: any ranges will do
        calibration = torch.randn(32, model.config.in_chans, model.config.input_size, model.config.input_size)
    deployed = deploy(model, backend, precision, calibration if precision == "int8" else None, threads)
    return Contender(f"deploy {backend} {precision}", spec, deployed, deployed.size_bytes)


def contender_specs(
    reference: str | None,
    compile: bool = False,
    precisions: Sequence[str] = ("fp32", "bf16", "int8"),
    backends: Sequence[str] | None = None,
) -> list[tuple[str, ...]]:
    """Every path to compare, the reference (if any) first; ``deploy torch fp32`` is ``optimize``. ``backends``: the
    deploy backends to time (default: every one installed)."""
    specs: list[tuple[str, ...]] = [("reference", reference)] if reference else []
    specs += [("eager",), ("optimize",)] + ([("optimize", "compile")] if compile else [])
    if "fp32" in precisions and "onnxruntime" in available_backends("fp32"):
        specs.append(("onnxruntime-session",))  # what deploy's fp32 must at least match
    for precision in precisions:
        if precision == "bf16" and not bf16_supported():
            continue
        specs += [
            ("deploy", b, precision)
            for b in available_backends(precision)
            if (b, precision) != ("torch", "fp32") and (backends is None or b in backends)
        ]
    return specs


def bench_model(
    model: nn.Module,
    threads: int = 2,
    batch: int = 32,
    rounds: int = 3,
    calls: int = 20,
    reference: str = "auto",
    compile: bool = False,
    precisions: Sequence[str] = ("fp32", "bf16", "int8"),
    calibration: ImageSource | None = None,
    memory: bool = False,
    progress: bool = False,
    graphs: Sequence[str | Path] = (),
    backends: Sequence[str] | None = None,
) -> BenchResult:
    """Time every path of ``model`` (see the module's docstring); ``memory`` adds each path's peak RSS.

    ``reference``: one of ``REFERENCES``, or a .tflite file (the one the weights came from) that Google's
    runtime runs, one image per invoke. ``graphs``: files exported from ``model`` (ONNX, OpenVINO IR, ExecuTorch,
    TFLite), each timed beside the rest in its own runtime, as it was saved. ``backends``: the deploy backends to
    time (default: every one installed).
    """
    model = model.eval()
    kind = getattr(model, "kind", MOBILENET)
    if memory and kind != MOBILENET:
        raise ValueError(
            f"peak memory rebuilds the model as a MobileNet in fresh processes, not a {kind}: leave it out"
        )
    size = model.config.input_size
    check_batch_fits(model.config, batch, size)
    found, note = pick_reference(str(reference), model)
    notes = [note] if note else []
    if is_detector(model) and found is not None and is_tflite(found):
        notes.append("LiteRT also runs the file's post-processing op (its NMS); ours stop at the raw outputs")
    specs = contender_specs(found, compile, precisions, backends) + [("graph", str(graph)) for graph in graphs]
    if "int8" in precisions and calibration is None:
        notes.append("int8 calibrated on random tensors: its speed is measured, not its accuracy")
    with torch_threads(threads):
        contenders = [build(spec, model, threads, calibration) for spec in specs]
        x = torch.randn(batch, model.config.in_chans, size, size)
        samples = time_paths([c.run for c in contenders], [c.inputs(x) for c in contenders], rounds, calls, progress)
    gflops = gemm_gflops(threads)
    madds = module_cost(model, torch.zeros(1, model.config.in_chans, size, size))[1]
    floor_b1 = 2 * madds / (gflops * 1e9)

    # Ratios of the medians printed beside them: a ratio that disagreed with its own columns would mislead.
    ref_b1_ms, ref_throughput = median_and_p90(samples[0][0])[0], statistics.median(samples[0][1])
    paths = []
    for contender, (latencies, throughputs) in zip(contenders, samples, strict=True):
        b1_ms, b1_p90_ms = median_and_p90(latencies)
        throughput = statistics.median(throughputs)
        paths.append(
            PathResult(
                name=contender.name,
                b1_ms=b1_ms,
                b1_p90_ms=b1_p90_ms,
                throughput=throughput,
                b1_speedup=ref_b1_ms / b1_ms,
                throughput_speedup=throughput / ref_throughput,
                b1_floor_ratio=b1_ms / 1e3 / floor_b1,
                throughput_floor_ratio=1 / floor_b1 / throughput,
                size_mb=contender.size_bytes / 1e6,
            )
        )
    result = BenchResult(
        arch=model.config.arch,
        width_mult=model.config.width_mult,
        resolution=size,
        threads=threads,
        batch=batch,
        madds=madds,
        gemm_gflops=gflops,
        floor_b1_ms=floor_b1 * 1e3,
        floor_throughput=1 / floor_b1,
        reference=contenders[0].name,
        notes=notes,
        paths=paths,
        kind=kind,
    )
    if memory:
        _add_peak_memory(result, model, specs, calibration)
    return result


def bench(
    arch: str = "mobilenet_v2",
    widths: Sequence[float] = (1.0,),
    resolutions: Sequence[int] | None = None,
    weights: str | Path | None = None,
    **options: Any,
) -> list[BenchResult]:
    """:func:`bench_model` for every width x resolution of ``arch`` (random weights), or of the model a ``weights``
    file holds (any kind: the file decides, at one cell).

    ``resolutions`` None: the model's own input size (224 for the classifiers, 320 for SSDLite).

    ``reference="litert"`` times Google's runtime on the ``weights`` file itself (a .tflite file); ``graphs`` are
    files exported from the model, timed beside it (see :func:`bench_model`). A saved graph
    (an ONNX file of ``mobilenet export``, an OpenVINO IR of ours) is timed in its runtime, beside our paths on a
    model of its architecture with random weights.
    """
    if weights is not None and (len(widths) > 1 or len(resolutions or ()) > 1):
        raise ValueError("weights fix the width and resolution: give one of each, or no weights")
    if options.get("reference") == "litert":
        if weights is None or not is_tflite(str(weights)):
            raise ValueError("reference 'litert' runs the weights file in Google's runtime: pass .tflite weights")
        options["reference"] = str(weights)
    results, graphs = [], list(options.pop("graphs", ()))
    for width in widths:
        for resolution in resolutions or (None,):
            size = {} if resolution is None else {"input_size": resolution}
            if weights is not None and Path(weights).suffix in GRAPHS:
                model = graph_model(weights)
                results.append(bench_model(model, graphs=[weights, *graphs], **options))  # type: ignore[arg-type]
                continue
            model = load(weights) if weights is not None else create_model(arch, width_mult=width, **size)
            results.append(bench_model(model, graphs=graphs, **options))  # type: ignore[arg-type]
    return results


def graph_model(path: str | Path) -> nn.Module:
    """A model of the architecture that a saved graph of ours holds (its metadata says), with random weights."""
    kind = kind_of_file(path)
    info = graph_info(Path(path))[1]
    known = {field.name for field in fields(kind.config)}
    return kind.call(
        "create", kind.default_model, **{k: v for k, v in (info.config_fields or {}).items() if k in known}
    )


def _peak_rss_mb() -> float:
    status = Path("/proc/self/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1]) / 1024


def memory_probe(request: str) -> None:
    """In a fresh process: build one path (or none), then print the peak RSS (MB) while it runs.

    The peak is reset after the build (calibration and export are one-off costs), so it counts what
    inference holds: Python, torch, the model, the built path and its activations at batch 1 and N.
    """
    spec, config, threads, batch, calibration = json.loads(request)
    model = MobileNet(ModelConfig(**config)).eval()
    x = torch.randn(batch, model.config.in_chans, model.config.input_size, model.config.input_size)
    with torch_threads(threads):
        contender = build(tuple(spec), model, threads, calibration) if spec else None
        one, many = contender.inputs(x) if contender else (None, None)
        Path("/proc/self/clear_refs").write_text("5")  # Linux: the peak RSS restarts from the current RSS
        for _ in range(2 if contender else 0):
            contender.run(one)  # type: ignore[union-attr]
            contender.run(many)  # type: ignore[union-attr]
    print(_peak_rss_mb())


def _add_peak_memory(
    result: BenchResult, model: MobileNet, specs: list[tuple[str, ...]], calibration: ImageSource | None
) -> None:
    folder = str(calibration) if isinstance(calibration, (str, Path)) else None
    config = asdict(model.config)

    def probe(spec: tuple[str, ...] | None) -> float | None:
        request = json.dumps([spec, config, result.threads, result.batch, folder])
        code = "import sys; from mobilenet.tools.bench import memory_probe; memory_probe(sys.argv[1])"
        done = subprocess.run([sys.executable, "-c", code, request], capture_output=True, text=True)
        return float(done.stdout.split()[-1]) if done.returncode == 0 and done.stdout.strip() else None

    result.baseline_memory_mb = probe(None)
    for path, spec in zip(result.paths, specs, strict=True):
        path.peak_memory_mb = probe(spec)
