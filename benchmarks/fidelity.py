"""Fidelity of the imported Google TFLite MobileNets on real images: top-1/top-5, LiteRT agreement.

    python benchmarks/fidelity.py [--shared ../shared] [--padding-ablation]

Scores every classifier in ../shared/data/weights on ../shared/data/imagenet-sample (500 real
images, one per class) with our float import, and with Google's runtime (ai-edge-litert) on the
same crops; prints a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from mobilenet.classification.metrics import topk_accuracy
from mobilenet.classification.predict import predict_logits
from mobilenet.weights import load_model
from mobilenet.weights.tflite import litert_logits

FILES = [
    "mobilenet_v2_1.0_224_quant.tflite",
    "mobilenet_v1_0.75_192_quant.tflite",
    "mobilenet_v1_0.5_160_quant.tflite",
    "mobilenet_v1_0.25_128_quant.tflite",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    parser.add_argument("--padding-ablation", action="store_true", help="also score with symmetric padding")
    args = parser.parse_args()
    data = args.shared / "data"
    index = json.loads((data / "imagenet_class_index.json").read_text())
    synset_to_index = {synset: int(i) for i, (synset, _) in index.items()}
    images = sorted((data / "imagenet-sample").glob("*.JPEG"))
    labels = torch.tensor([synset_to_index[p.name.split("_")[0]] for p in images])
    print(f"{len(images)} images from {data / 'imagenet-sample'}\n")
    print("| weights | ours top-1 | ours top-5 | LiteRT top-1 | top-1 agreement | symmetric-padding top-1 |")
    print("|---|---|---|---|---|---|")
    for name in FILES:
        start = time.perf_counter()
        model = load_model(data / "weights" / name)
        ours = predict_logits(model, images, progress=True)
        reference = torch.from_numpy(litert_logits(data / "weights" / name, images))
        agreement = (ours.argmax(1) == reference.argmax(1)).float().mean().item()
        ablation = "-"
        if args.padding_ablation:
            symmetric = load_model(data / "weights" / name, padding="symmetric")
            ablation = f"{topk_accuracy(predict_logits(symmetric, images), labels):.1%}"
        print(
            f"| {name} | {topk_accuracy(ours, labels):.1%} | {topk_accuracy(ours, labels, 5):.1%} "
            f"| {topk_accuracy(reference, labels):.1%} | {agreement:.1%} | {ablation} |",
            f"<!-- {time.perf_counter() - start:.0f} s -->",
        )


if __name__ == "__main__":
    main()
