"""Mobile DeepLabv3 scored on real data: PASCAL VOC 2012 val and COCO128 val with COCO's classes mapped to VOC's.

    python benchmarks/segmentation_eval.py [--threads 2] [--out DIR]

Every predictor is scored by ``mobilenet.segmentation.evaluate`` with DeepLab's protocol: each image padded at the
bottom/right to 513x513 with the mean pixel (a larger one, as COCO's 640-pixel images, is scaled down to fit first),
the prediction cropped back (and scaled back up) to the image, void/unlabeled pixels ignored, one confusion matrix
summed over the set; mIoU over the classes present in the ground truth or predicted (as tf.metrics.mean_iou).

Google's runtime (LiteRT) on Coral's two uint8 files is the reference, and the independent check of the protocol
and the metrics: ../shared/README.md measured 72.56% (alpha 1.0) and 67.29% (alpha 0.5) mIoU on the 161 VOC val
images. Beside it, in the same run, our PyTorch DeepLabV3 with each file's weights imported, in float and with its
activations rounded as the file's integer arithmetic does (``emulate_int8``), and the share of pixels whose class
ours and LiteRT agree on.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
import time
from pathlib import Path

import torch
from machine import HelpFormatter, cpu_name  # benchmarks/machine.py, beside this script

from mobilenet.segmentation.data import SegmentationPairs, coco128_voc, voc_pairs
from mobilenet.segmentation.evaluate import evaluate_segmentation
from mobilenet.segmentation.litert import LiteRTSegmenter
from mobilenet.segmentation.load import load_deeplab
from mobilenet.segmentation.metrics import SegmentationEvaluation
from mobilenet.segmentation.plots import plot_class_iou
from mobilenet.segmentation.predict import Predictor, model_predictor, predict_mask
from mobilenet.utils.files import atomic_text

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
README = {"VOC 2012 val": {"LiteRT alpha 1.0": 0.7256, "LiteRT alpha 0.5": 0.6729}}  # ../shared/README.md

Results = dict[str, dict[str, SegmentationEvaluation]]  # dataset -> predictor -> scores


def datasets(shared: Path) -> dict[str, SegmentationPairs]:
    """The real evaluation sets: 161 official VOC val pairs, and COCO128's 100 labelled val images."""
    return {
        "VOC 2012 val": SegmentationPairs(voc_pairs(shared / "segmentation" / "voc2012" / "val")),
        "COCO128 val": coco128_voc(shared / "detection" / "coco128", "val2017"),
    }


def coral_predictors(shared: Path, threads: int) -> dict[str, Predictor]:
    """Google's runtime on Coral's Mobile DeepLabv3 files (MobileNetV2 alpha 1.0 and 0.5, PASCAL VOC, uint8)."""
    weights = shared / "weights"
    return {
        "LiteRT alpha 1.0": LiteRTSegmenter(weights / "deeplabv3_mnv2_pascal_quant.tflite", threads),
        "LiteRT alpha 0.5": LiteRTSegmenter(weights / "deeplabv3_mnv2_dm05_pascal_quant.tflite", threads),
    }


def our_predictors(shared: Path, emulate_int8: bool) -> dict[str, Predictor]:
    """Our PyTorch DeepLabV3 with each Coral file's weights imported: in float, or rounding as the file does."""
    files = {"1.0": "deeplabv3_mnv2_pascal_quant.tflite", "0.5": "deeplabv3_mnv2_dm05_pascal_quant.tflite"}
    kind = "int8-emulated" if emulate_int8 else "float"
    return {
        f"ours {kind} alpha {alpha}": model_predictor(load_deeplab(shared / "weights" / name, emulate_int8))
        for alpha, name in files.items()
    }


@torch.inference_mode()
def agreement(ours: Predictor, theirs: Predictor, dataset: SegmentationPairs) -> tuple[float, float]:
    """The share of pixels whose class two predictors agree on: over the whole set, and on the worst image."""
    agree = total = 0
    worst = 1.0
    for image, _ in (item for item in dataset if item is not None):
        a, b = predict_mask(ours, image), predict_mask(theirs, image)
        same = int((a == b).sum())
        agree, total, worst = agree + same, total + a.numel(), min(worst, same / a.numel())
    return agree / total, worst


def score(predictors: dict[str, Predictor], sets: dict[str, SegmentationPairs]) -> tuple[Results, dict[str, float]]:
    """Every predictor on every dataset, and the wall seconds each predictor took in all."""
    results: Results = {name: {} for name in sets}
    seconds = dict.fromkeys(predictors, 0.0)
    for predictor, predict in predictors.items():
        for name, dataset in sets.items():
            start = time.perf_counter()
            results[name][predictor] = evaluate_segmentation(predict, dataset, progress=True)
            seconds[predictor] += time.perf_counter() - start
    return results, seconds


def summary_table(results: Results) -> str:
    """mIoU and pixel accuracy of each predictor (columns) on each dataset (rows), with the published figures."""
    predictors = list(next(iter(results.values())))
    lines = [f"| dataset | images | {' | '.join(predictors)} |", "|---|---|" + "---|" * len(predictors)]
    for name, row in results.items():
        cells = []
        for predictor in predictors:
            result, expected = row[predictor], README.get(name, {}).get(predictor)
            note = f" (README {expected:.2%})" if expected is not None else ""
            cells.append(f"{result.miou:.2%} mIoU{note}, {result.pixel_acc:.2%} pixels")
        lines.append(f"| {name} | {row[predictors[0]].n} | {' | '.join(cells)} |")
    return "\n".join(lines)


def class_table(row: dict[str, SegmentationEvaluation]) -> str:
    """Per class: the images whose ground truth holds it, each predictor's IoU ("-": neither present nor predicted)."""
    predictors = list(row)
    first = row[predictors[0]]
    lines = [f"| class | images | {' | '.join(predictors)} |", "|---|---|" + "---|" * len(predictors)]
    for index, name in enumerate(first.classes):
        cells = ["-" if row[p].iou[index] is None else f"{row[p].iou[index]:.1%}" for p in predictors]
        lines.append(f"| {name} | {first.images[index]} | {' | '.join(cells)} |")
    return "\n".join(lines)


def write_files(results: Results, out: Path) -> None:
    """Each evaluation as JSON and its per-class IoU bars as PNG, named after the dataset and predictor."""
    for name, row in results.items():
        for predictor, result in row.items():
            stem = re.sub(r"[^a-z0-9.]+", "-", f"{name} {predictor}".lower())
            atomic_text(out / f"{stem}.json", result.to_json())
            plot_class_iou(result, out / f"{stem}.png", title=f"{predictor} on {name} ({result.n} images)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--shared", type=Path, default=SHARED, help="the shared data folder")
    parser.add_argument("--threads", type=int, default=2, help="LiteRT's CPU threads")
    parser.add_argument("--out", type=Path, help="also write each evaluation's JSON and per-class IoU PNG here")
    args = parser.parse_args()
    print(f"$ {shlex.join(['python', *sys.argv])}\n{cpu_name()}, LiteRT {args.threads} threads\n")
    sets = datasets(args.shared)
    litert = coral_predictors(args.shared, args.threads)
    ours = {emulated: our_predictors(args.shared, emulated) for emulated in (False, True)}
    results, seconds = score({**litert, **ours[False], **ours[True]}, sets)
    print(summary_table(results))
    print("\nwall time: " + ", ".join(f"{name} {s:.1f} s" for name, s in seconds.items()))
    print("\nPixels whose class ours and LiteRT agree on (whole set; worst image):")
    for mine in ours.values():
        for (name, theirs), (our_name, predict) in zip(litert.items(), mine.items(), strict=True):
            for set_name, dataset in sets.items():
                overall, worst = agreement(predict, theirs, dataset)
                print(f"  {our_name} vs {name}, {set_name}: {overall:.2%}; worst image {worst:.2%}")
    for name, row in results.items():
        print(f"\n{name}: IoU per class\n{class_table(row)}")
    if args.out:
        write_files(results, args.out)


if __name__ == "__main__":
    main()
