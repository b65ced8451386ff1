"""Our full-integer TFLite files in MediaPipe's Tasks API, against LiteRT on the same images: the file an Android app
drops in gives the answers our checks measured.

    bash benchmarks/mediapipe_env.sh mediapipe      # once: MediaPipe in an environment of its own
    python benchmarks/mediapipe_agreement.py --mediapipe mediapipe/bin/python [--images 50]

Each kind is exported by ``export_tflite_int8`` from Google's weights imported in float (Coral's MobileNetV2 1.0
classifier, Coral's Mobile DeepLabv3, Google's COCO SSD MobileNetV1 0.75), calibrated on 100 training images of
its task, with its standard TFLite Model Metadata and label file. The test images (ImageNet sample, VOC 2012 val,
COCO128 val) are resized to the file's input size and saved as PNG, so that MediaPipe's own resizing leaves them
as LiteRT gets them. MediaPipe (``benchmarks/mediapipe_run.py``, which imports nothing of ours) reads only the file:
the top class and its name, the category mask, the boxes with their classes, names and scores, compared with
LiteRT's outputs of the same file.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from machine import HelpFormatter, cpu_name  # benchmarks/machine.py, beside this script
from PIL import Image

from mobilenet.data.images import image_files
from mobilenet.inference.edge import export_tflite_int8
from mobilenet.registry import load
from mobilenet.runtimes.litert import LiteRTFile

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
KINDS = {  # weights, calibration images, test images
    "classifier": ("weights/mobilenet_v2_1.0_224_quant.tflite", "imagenette/train", "imagenet-sample"),
    "segmenter": ("weights/deeplabv3_mnv2_pascal_quant.tflite", "segmentation/voc2012/train/JPEGImages",
                  "segmentation/voc2012/val/JPEGImages"),
    "detector": ("weights/ssd_mobilenet_v1_075_coco_quant.tflite", "detection/coco128/images/train2017",
                 "detection/coco128/images/val2017"),
}  # fmt: skip


def compare(kind: str, litert: list[np.ndarray], found: list[dict], size: int, names: list[str]) -> str:
    """How MediaPipe's answers agree with LiteRT's outputs of the same file, in words."""
    if kind == "classifier":
        top = litert[0].argmax(1)
        same = np.mean([f["index"] == t for f, t in zip(found, top, strict=True)])
        named = np.mean([f["name"] == names[t] for f, t in zip(found, top, strict=True)])
        return f"top class {same:.1%} the same, its name {named:.1%}"
    if kind == "segmenter":
        masks = litert[0].argmax(-1)
        return f"category mask {np.mean([np.array(f['mask']) == m for f, m in zip(found, masks, strict=True)]):.2%} " \
               "of pixels the same"  # fmt: skip
    boxes, classes, scores, counts = litert
    matched = total = 0
    for image, f in enumerate(found):  # MediaPipe names each box's class (its index is left unset)
        ours = [(names[int(classes[image, i]) + 1], float(scores[image, i]), boxes[image, i] * size)
                for i in range(int(counts[image]))]  # fmt: skip
        total += len(ours)
        for name, score, (ymin, xmin, ymax, xmax) in ours:
            for box, theirs_name, theirs in zip(f["boxes"], f["names"], f["scores"], strict=True):
                # MediaPipe gives whole pixels, its corner moved into the image (its size kept): each rounds off
                expected = [max(xmin, 0), max(ymin, 0), xmax - xmin, ymax - ymin]
                close = np.abs(np.array(box) - expected).max() <= 2.0
                if theirs_name == name and abs(theirs - score) < 1e-4 and close:
                    matched += 1
                    break
    given = sum(len(f["boxes"]) for f in found)
    return (
        f"{matched} of LiteRT's {total} detections the same among MediaPipe's {given} (class name, score to "
        "1e-4, box within its rounding to pixels)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--mediapipe", required=True, help="the Python of MediaPipe's environment")
    parser.add_argument("--images", type=int, default=50, help="test images per kind")
    parser.add_argument("--shared", type=Path, default=SHARED, help="the shared data folder")
    args = parser.parse_args()
    print(f"$ {shlex.join(['python', *sys.argv])}\n{cpu_name()}\n")
    version = subprocess.run([args.mediapipe, "-c", "import mediapipe; print(mediapipe.__version__)"],
                             capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    print(f"MediaPipe {version}\n\n| model | MediaPipe against LiteRT, same file and images |\n|---|---|")
    runner = Path(__file__).with_name("mediapipe_run.py")
    with tempfile.TemporaryDirectory() as work:
        for kind, (weights, calibration, tests) in KINDS.items():
            model = load(args.shared / weights).eval()
            path = Path(work) / f"{kind}.tflite"
            export_tflite_int8(model, path, args.shared / calibration, limit=100)
            size = model.preprocessing.input_size
            files = image_files([str(args.shared / tests)])[: args.images]
            pixels = np.stack([np.asarray(Image.open(f).convert("RGB").resize((size, size), Image.BILINEAR))
                               for f in files])  # fmt: skip
            pngs = []
            for i, image in enumerate(pixels):
                pngs.append(Path(work) / f"{kind}_{i}.png")
                Image.fromarray(image).save(pngs[-1])
            litert = [o.numpy() for o in LiteRTFile(path)(pixels)]
            if kind == "detector":  # LiteRT's outputs concatenated per image: boxes, classes, scores (N, 10...)
                litert = [o.reshape(len(files), *o.shape[1:]) if o.ndim > 1 else o for o in litert]
            done = subprocess.run([args.mediapipe, str(runner), kind, str(path), *map(str, pngs)], capture_output=True,
                                  text=True, check=True)  # fmt: skip
            names = list(model.class_names or [])
            print(f"| {type(model).__name__} ({Path(weights).name}), {len(files)} images | "
                  f"{compare(kind, litert, json.loads(done.stdout), size, names)} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
