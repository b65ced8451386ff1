"""Speed and accuracy of every inference path of MobileNetV2 1.0@224 (Coral weights), side by side.

    python benchmarks/deploy_accuracy.py [--shared ../shared] [--threads 2] [--rounds 5] [--compile] [--json OUT]

Speed: batch-1 latency (median of 30 calls) and batch-32 throughput of plain eager PyTorch, ``optimize``,
a plain ONNX Runtime session, and every ``deploy`` backend x precision installed, interleaved round by
round so that load from other processes hits all alike; ratios to eager are taken within each round.
Accuracy: top-1 (1000-way, via synsets) on imagenette/val (1,966 ILSVRC validation images) and
imagenet-sample (500), int8 calibrated on 100 imagenette/train images (disjoint from both).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from mobilenet.data import image_batch
from mobilenet.deploy import BACKENDS, available_backends, deploy
from mobilenet.export import export_onnx
from mobilenet.optimize import bf16_supported, optimize
from mobilenet.weights import load_model

WEIGHTS = "weights/mobilenet_v2_1.0_224_quant.tflite"
Runner = Callable[[torch.Tensor], torch.Tensor]


def labelled(data: Path, pre, synset_to_index: dict[str, int], folder: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Preprocessed images and their 1000-way labels: ``<synset>/*.JPEG`` or ``<synset>_*.JPEG`` files."""
    root = data / folder
    files = sorted(p for p in root.rglob("*.JPEG"))
    synsets = [p.parent.name if p.parent != root else p.name.split("_")[0] for p in files]
    return image_batch(files, pre), torch.tensor([synset_to_index[s] for s in synsets])


def contenders(model, args, calibration: torch.Tensor, onnx_path: Path) -> dict[str, Runner]:
    """Every path to compare, built once; the first is the reference (plain eager PyTorch, NCHW)."""
    import onnxruntime as ort

    def eager(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return model(x)

    paths: dict[str, Runner] = {"PyTorch eager (NCHW)": eager}
    if args.compile:
        paths["optimize compile (freezing)"] = optimize(model, compile=True)
    options = ort.SessionOptions()  # ONNX Runtime's defaults, as users run it, at the same thread count
    options.intra_op_num_threads = args.threads
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    paths["plain ONNX Runtime session"] = lambda x: torch.from_numpy(session.run(None, {"images": x.numpy()})[0])
    builds = [(backend, precision, None) for precision in ("fp32", "bf16", "int8") for backend in BACKENDS]
    builds += [(backend, "int8", method) for backend, method in (m.split(":") for m in args.methods)]
    for backend, precision, method in builds:
        if (precision == "bf16" and not bf16_supported()) or backend not in available_backends(precision):
            continue
        start = time.perf_counter()
        cal = calibration if precision == "int8" else None
        deployed = deploy(model, backend, precision, cal, args.threads, calibration_method=method)
        print(f"built {deployed!r} in {time.perf_counter() - start:.0f} s", flush=True)
        name = f"deploy {backend} {precision}" + (f" ({deployed.calibration_method})" if method else "")
        paths[name + (" = optimize" if backend == "torch" else "")] = deployed
    return paths


def speed(paths: dict[str, Runner], images: torch.Tensor, rounds: int) -> dict[str, dict[str, float]]:
    """Interleaved rounds; per path the median over rounds of b1 latency, b32 throughput, ratios to eager."""
    x1, x32 = images[:1].clone(), images[:32].clone()
    for run in paths.values():  # warm-up (and compilation) outside the timed rounds
        run(x1), run(x32)
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in paths}
    for index in range(rounds):
        for name, run in paths.items():
            times = []
            for _ in range(30):
                start = time.perf_counter()
                run(x1)
                times.append(time.perf_counter() - start)
            start = time.perf_counter()
            for _ in range(3):
                run(x32)
            samples[name].append((statistics.median(times) * 1000, 96 / (time.perf_counter() - start)))
        print(f"round {index + 1}/{rounds}, load {Path('/proc/loadavg').read_text().split()[:3]}", flush=True)
    reference = samples[next(iter(paths))]
    results = {}
    for name, rows in samples.items():
        results[name] = {
            "b1_ms": statistics.median(r[0] for r in rows),
            "b1_ms_min": min(r[0] for r in rows),
            "b32_img_s": statistics.median(r[1] for r in rows),
            "b32_img_s_max": max(r[1] for r in rows),
            "b1_speedup": statistics.median(ref[0] / r[0] for ref, r in zip(reference, rows, strict=True)),
            "b32_speedup": statistics.median(r[1] / ref[1] for ref, r in zip(reference, rows, strict=True)),
        }
    return results


def accuracy(paths: dict[str, Runner], sets: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> dict[str, dict]:
    results: dict[str, dict] = {}
    reference = {}
    for name, run in paths.items():
        results[name] = {}
        for set_name, (images, labels) in sets.items():
            predictions = torch.cat([run(batch).argmax(1) for batch in images.split(50)])
            reference.setdefault(set_name, predictions)
            results[name][set_name] = {
                "top1": (predictions == labels).float().mean().item(),
                "agreement": (predictions == reference[set_name]).float().mean().item(),
            }
        print(f"scored {name}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--compile", action="store_true", help="also torch.compile (minutes to compile)")
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--methods", nargs="*", default=[], metavar="BACKEND:METHOD",
                        help="extra int8 calibration methods, e.g. onnxruntime:percentile openvino:minmax")  # fmt: skip
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    data = args.shared / "data"
    model = load_model(data / WEIGHTS).eval()
    index = json.loads((data / "imagenet_class_index.json").read_text())
    synset_to_index = {synset: int(i) for i, (synset, _) in index.items()}
    calibration = image_batch(data / "imagenette/train", model.preprocessing, limit=100)
    onnx_path = Path("/tmp/mobilenet_v2_coral.onnx")
    print(export_onnx(model, onnx_path, inputs=calibration[:8]))
    paths = contenders(model, args, calibration, onnx_path)
    report: dict = {"threads": args.threads, "load_before": Path("/proc/loadavg").read_text().split()[:3]}
    report["speed"] = speed(paths, calibration[:32], args.rounds)
    print(f"\n{args.threads} threads, {args.rounds} interleaved rounds (median; best in brackets)\n")
    print("| path | b1 ms | b1 speed-up | b32 img/s | b32 speed-up |\n|---|---|---|---|---|")
    for name, r in report["speed"].items():
        print(f"| {name} | {r['b1_ms']:.2f} ({r['b1_ms_min']:.2f}) | {r['b1_speedup']:.2f}x "
              f"| {r['b32_img_s']:.0f} ({r['b32_img_s_max']:.0f}) | {r['b32_speedup']:.2f}x |")  # fmt: skip
    if not args.skip_accuracy:
        folders = {"imagenette-val": "imagenette/val", "imagenet-sample": "imagenet-sample"}
        sets = {name: labelled(data, model.preprocessing, synset_to_index, folder) for name, folder in folders.items()}
        report["accuracy"] = accuracy(paths, sets)
        print(f"\n| path | {' | '.join(f'{s} top-1 | agreement' for s in sets)} |\n|---|{'---|---|' * len(sets)}")
        for name, by_set in report["accuracy"].items():
            cells = " | ".join(f"{r['top1']:.2%} | {r['agreement']:.2%}" for r in by_set.values())
            print(f"| {name} | {cells} |")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
