"""Accuracy of every inference path of MobileNetV2 1.0@224 (Coral weights), side by side.

    python benchmarks/deploy_accuracy.py [--shared ../shared] [--threads 2] [--compile] [--only executorch]
                                         [--json OUT]

Speed is `mobilenet bench --weights ...` (or benchmarks/bench.py, with torchvision as the reference).
Accuracy: top-1 (1000-way, via synsets) on imagenette/val (1,966 ILSVRC validation images) and
imagenet-sample (500), int8 calibrated on 100 imagenette/train images (disjoint from both).
"""

from __future__ import annotations

import argparse
import json
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from mobilenet.data.images import image_batch
from mobilenet.inference.deploy import deploy
from mobilenet.tools.bench import build, contender_specs
from mobilenet.weights import load_model

WEIGHTS = "weights/mobilenet_v2_1.0_224_quant.tflite"
Runner = Callable[[torch.Tensor], torch.Tensor]


def labelled(data: Path, pre, synset_to_index: dict[str, int], folder: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Preprocessed images and their 1000-way labels: ``<synset>/*.JPEG`` or ``<synset>_*.JPEG`` files."""
    root = data / folder
    files = sorted(p for p in root.rglob("*.JPEG"))
    synsets = [p.parent.name if p.parent != root else p.name.split("_")[0] for p in files]
    return image_batch(files, pre), torch.tensor([synset_to_index[s] for s in synsets])


def contenders(model, args, calibration: torch.Tensor) -> dict[str, Runner]:
    """Every path to score, built once; the first (plain eager PyTorch) is the one others must agree with."""
    specs = contender_specs(None, args.compile) + [
        ("deploy", backend, "int8", method) for backend, method in (m.split(":") for m in args.methods)
    ]
    if args.only:  # eager, the reference, and the paths of the backends named
        specs = [spec for spec in specs if spec == ("eager",) or set(spec) & set(args.only)]
    paths = {}
    for spec in specs:
        if spec[0] == "deploy" and len(spec) == 4:  # an extra calibration method
            deployed = deploy(model, spec[1], "int8", calibration, args.threads, calibration_method=spec[3])
            paths[f"deploy {spec[1]} int8 ({deployed.calibration_method})"] = deployed
            continue
        contender = build(spec, model, args.threads, calibration)
        paths[contender.name] = contender.run
        print(f"built {contender.name}", flush=True)
    return paths


def accuracy(paths: dict[str, Runner], sets: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> dict[str, dict]:
    results: dict[str, dict] = {}
    reference = {}
    for name, run in paths.items():
        results[name] = {}
        for set_name, (images, labels) in sets.items():
            predictions = torch.cat([torch.as_tensor(run(batch)).argmax(1) for batch in images.split(50)])
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
    parser.add_argument("--compile", action="store_true", help="also torch.compile (minutes to compile)")
    parser.add_argument("--methods", nargs="*", default=[], metavar="BACKEND:METHOD",
                        help="extra int8 calibration methods, e.g. onnxruntime:percentile openvino:minmax")  # fmt: skip
    parser.add_argument("--only", nargs="*", default=[], metavar="BACKEND",
                        help="score only these backends' paths (and eager, the reference)")  # fmt: skip
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    data = args.shared / "data"
    model = load_model(data / WEIGHTS).eval()
    index = json.loads((data / "imagenet_class_index.json").read_text())
    synset_to_index = {synset: int(i) for i, (synset, _) in index.items()}
    calibration = image_batch(data / "imagenette/train", model.preprocessing, limit=100)
    paths = contenders(model, args, calibration)
    folders = {"imagenette-val": "imagenette/val", "imagenet-sample": "imagenet-sample"}
    sets = {name: labelled(data, model.preprocessing, synset_to_index, folder)
            for name, folder in folders.items() if (data / folder).is_dir()}  # fmt: skip
    report = {"threads": args.threads, "accuracy": accuracy(paths, sets)}
    print(f"\n| path | {' | '.join(f'{s} top-1 | agreement' for s in sets)} |\n|---|{'---|---|' * len(sets)}")
    for name, by_set in report["accuracy"].items():
        cells = " | ".join(f"{r['top1']:.2%} | {r['agreement']:.2%}" for r in by_set.values())
        print(f"| {name} | {cells} |")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
