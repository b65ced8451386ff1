"""Published top-1 against measured, for every classifier weights file the library knows by name.

    python benchmarks/published_accuracy.py [--shared ../shared] [--limit N] [--threads 2]

Lists the classifiers of the registry (what `mobilenet weights` lists) with the publisher's ImageNet top-1 and its
source, and scores each file that is here: Coral's four uint8 files in ../shared/data/weights (or
$MOBILENET_SHARED), any other only if it is already in the download cache (nothing is downloaded). Each is scored
with two preprocessings: the file's own record (short side to size / 0.875, center crop) and TF-slim's evaluation
(``resize="central_fraction"``: the central 87.5% of height and width, squashed to the input by TF1's bilinear
resize), on the 500 images of imagenet-sample (one per class, train-like) and on the ILSVRC2012 validation images
of imagenette/val (10 classes, scored 1000-way). "ours" is the library's float model (``load_model``: a uint8 file
dequantized); "LiteRT" is Google's runtime on the uint8 file itself, where ai-edge-litert is installed.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch
from machine import HelpFormatter, cpu_name  # benchmarks/machine.py, beside this script
from tqdm import tqdm

from mobilenet.data.images import image_batch
from mobilenet.data.subsets import spread
from mobilenet.nn.preprocessing import Preprocessing
from mobilenet.registry import kind_of_model, load, published_weights
from mobilenet.runtimes import litert
from mobilenet.weights.download import cache_dir
from mobilenet.weights.load import load_model
from mobilenet.weights.published import CORAL, PublishedWeights

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MOBILENET_SHARED", ROOT.parent / "shared"))
BATCH = 50
# Where the registry's top1_published comes from, by the file's address.
REGISTRY_SOURCE = {
    CORAL: "TF-slim float",  # Coral's entries give the float checkpoint's figure of the same architecture
    "https://download.pytorch.org/": "torchvision",
    "https://huggingface.co/timm/": "timm",
    "https://github.com/rwightman/": "timm",
}
# Other published figures for the same files (ImageNet val top-1, %). TF-slim _quant: the 2018_08_02 rows of
# tensorflow/models research/slim/nets/mobilenet_v1.md (measured on the TFLite files; V2 has no such row);
# TFLite hosted: the quantized table of tensorflow.org/lite/guide/hosted_models.
MORE_FIGURES = {
    "mobilenet_v2_100.coral_uint8_224": [(70.8, "TFLite hosted")],
    "mobilenet_v1_075.coral_uint8_192": [(66.1, "TF-slim _quant"), (66.1, "TFLite hosted")],
    "mobilenet_v1_050.coral_uint8_160": [(57.7, "TF-slim _quant"), (57.2, "TFLite hosted")],
    "mobilenet_v1_025.coral_uint8_128": [(39.5, "TF-slim _quant"), (39.5, "TFLite hosted")],
}
Scorer = Callable[[torch.Tensor], torch.Tensor]  # a preprocessed batch -> 1000-way logits


def published(entry: PublishedWeights) -> str:
    """Every published top-1 of the file, with its source."""
    source = next((name for prefix, name in REGISTRY_SOURCE.items() if entry.url.startswith(prefix)), "publisher")
    figures = [(entry.top1_published, source)] if entry.top1_published is not None else []
    return ", ".join(f"{value:g} ({name})" for value, name in figures + MORE_FIGURES.get(entry.name, [])) or "-"


def local_file(entry: PublishedWeights, shared: Path) -> Path | None:
    """The file where it is here without a download: ../shared's weights, else the cache; None if neither."""
    for path in (shared / "data" / "weights" / entry.filename, cache_dir() / entry.filename):
        if path.is_file():
            return path
    return None


def labelled_sets(shared: Path, limit: int | None) -> dict[str, tuple[list[Path], torch.Tensor]]:
    """The two image sets as files and 1000-way labels (the class index's order), at most ``limit`` each."""
    index = json.loads((shared / "data" / "imagenet_class_index.json").read_text())
    synset_to_index = {synset: int(i) for i, (synset, _) in index.items()}
    sample = sorted((shared / "data" / "imagenet-sample").glob("*.JPEG"))
    val = sorted((shared / "data" / "imagenette" / "val").glob("*/*.JPEG"))
    sets = {}
    for name, files, synsets in (
        ("imagenet-sample", sample, [p.name.split("_")[0] for p in sample]),
        ("imagenette/val", val, [p.parent.name for p in val]),
    ):
        keep = spread(limit, len(files)) if limit is not None and limit < len(files) else range(len(files))
        sets[name] = [files[i] for i in keep], torch.tensor([synset_to_index[synsets[i]] for i in keep])
    return sets


def scorers(entry: PublishedWeights, path: Path, threads: int) -> tuple[torch.nn.Module, dict[str, Scorer]]:
    """The file as the library runs it (float) and, for a TFLite file where LiteRT is installed, as LiteRT does."""
    # a cached state dict by its name, which gives it the entry's preprocessing; a TFLite file carries its own
    model = (load_model(path) if path.suffix == ".tflite" else load(entry.name)).eval()
    found: dict[str, Scorer] = {"ours": model}
    if path.suffix == ".tflite" and litert.installed():
        runtime = litert.interpreter(path, threads=threads)

        def run(batch: torch.Tensor) -> torch.Tensor:
            logits = torch.from_numpy(litert.outputs(runtime, batch.permute(0, 2, 3, 1).numpy()))
            return logits[:, 1:] if logits.shape[1] == 1001 else logits  # class 0: background

        found["LiteRT"] = run
    return model, found


@torch.inference_mode()
def top1(score: dict[str, Scorer], files: list[Path], labels: torch.Tensor, pre: Preprocessing, what: str) -> dict:
    """Top-1 of each scorer on the same preprocessed batches (each image decoded once for all of them)."""
    correct = dict.fromkeys(score, 0)
    for start in tqdm(range(0, len(files), BATCH), desc=what, unit="batch", leave=False):
        batch = image_batch(files[start : start + BATCH], pre)
        for name, run in score.items():
            correct[name] += int((run(batch).argmax(1) == labels[start : start + BATCH]).sum())
    return {name: hits / len(files) for name, hits in correct.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--shared", type=Path, default=SHARED, help="the shared folder (holds data/)")
    parser.add_argument("--limit", type=int, help="score at most LIMIT images of each set, spread through it")
    parser.add_argument("--threads", type=int, default=2, help="PyTorch's and LiteRT's CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"$ {shlex.join(['python', *sys.argv])}\n{cpu_name()}, {args.threads} threads\n")
    start = time.perf_counter()
    sets = labelled_sets(args.shared, args.limit)
    columns = [(name, mode) for name in sets for mode in ("file's record", "TF-slim")]
    header = " | ".join(f"{name} ({len(sets[name][0]):,}), {mode}" for name, mode in columns)
    lines = [f"| weights | published top-1 (source) | scored by | {header} |", "|---" * (3 + len(columns)) + "|"]
    for entry in published_weights():
        if kind_of_model(entry.model).name != "classification":
            continue
        path = local_file(entry, args.shared)
        if path is None:
            lines.append(f"| {entry.name} | {published(entry)} | not here |" + " |" * len(columns))
            continue
        model, score = scorers(entry, path, args.threads)
        # TF-slim's geometry with the file's own normalization; TF-slim keeps 87.5% whatever the file's crop
        tf_slim = replace(model.preprocessing, resize="central_fraction", crop_pct=0.875, interpolation="bilinear")
        found = {
            (name, mode): top1(score, *sets[name], pre, f"{entry.name} {name} {mode}")
            for name in sets
            for mode, pre in (("file's record", model.preprocessing), ("TF-slim", tf_slim))
        }
        for row, scorer in enumerate(score):  # the file's name and figures on its first row only
            cells = " | ".join(f"{found[column][scorer]:.1%}" for column in columns)
            first = f"{entry.name} | {published(entry)}" if row == 0 else " | "
            lines.append(f"| {first} | {scorer} | {cells} |")
        print(f"scored {entry.name} ({path}) at {time.perf_counter() - start:.0f} s", flush=True)
    print("\n" + "\n".join(lines))
    print(f"\nwall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
