"""Bulk inference on Ray Data: images/s with 1 and 2 workers against ``mobilenet predict --out`` in the same run.

    python benchmarks/ray_predict.py [--weights FILE] [--repeat 8] [--backend auto] [--rounds 2]

imagenet-sample's 500 ImageNet JPEGs of ``../shared`` (``--repeat`` times: enough work that the actors' start-up
does not hide the throughput), classified by Coral's MobileNetV2 1.0 file (``--weights``). A local Ray cluster on
127.0.0.1 of as many CPUs as the machine has; each worker is an actor of ``mobilenet.inference.raydata.Predictor``
with one CPU (its backend on one thread), fed by ``read_binary_files``. The reference is the bulk path of
``mobilenet predict --out results.jsonl`` in this process, on every core. Each is timed whole (start-up included:
Ray's workers importing the library, loading the weights, exporting them to the backend) and on one image per
worker; the difference is the time of the images, "after start-up". Rounds alternate them; the median counts.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import ray

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.machine import HelpFormatter, cpu_name

from mobilenet import registry
from mobilenet.data.images import image_files
from mobilenet.inference.bulk import predict_to_file
from mobilenet.inference.raydata import Predictor

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MOBILENET_SHARED", ROOT.parent / "shared")) / "data"


def ray_seconds(paths: list[str], weights: str, backend: str, workers: int, batch: int) -> float:
    """Seconds for Ray Data to classify ``paths`` with ``workers`` actors, start-up included."""
    start = time.perf_counter()
    images = ray.data.read_binary_files(paths, include_paths=True)
    rows = images.map_batches(Predictor, fn_constructor_kwargs={"weights": weights, "backend": backend},
                              compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=1,
                              batch_size=batch).count()  # fmt: skip
    assert rows == len(paths), f"{rows} results for {len(paths)} images"
    return time.perf_counter() - start


def predict_seconds(paths: list[str], weights: str, backend: str, folder: Path) -> float:
    """Seconds for ``mobilenet predict --out results.jsonl``'s path on ``paths``, weights loaded included."""
    start = time.perf_counter()
    kind = registry.kind_of_weights(weights)
    model = registry.load_deployed(weights, backend, images=len(paths))
    out = folder / f"results-{time.perf_counter_ns()}.jsonl"
    predict_to_file(lambda files: kind.call("predict", model, files), paths, out, progress=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--weights", default=str(SHARED / "weights" / "mobilenet_v2_1.0_224_quant.tflite"))
    parser.add_argument("--images", default=str(SHARED / "imagenet-sample"))
    parser.add_argument("--repeat", type=int, default=8, help="the image list this many times over")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if not Path(args.images).is_dir() or not Path(args.weights).is_file():
        sys.exit(f"needs {args.images} and {args.weights} (../shared, or set MOBILENET_SHARED)")
    paths = [str(path) for path in image_files([args.images])] * args.repeat
    cpus = os.cpu_count() or 2
    ray.init(num_cpus=cpus + 1, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    ray.data.DataContext.get_current().enable_progress_bars = False
    runs = {"predict": 0, "ray, 1 worker": 1, f"ray, {cpus} workers": cpus}
    whole: dict[str, list[float]] = {name: [] for name in runs}
    started: dict[str, list[float]] = {name: [] for name in runs}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.rounds):
            for name, workers in runs.items():
                for some, times in ((paths, whole), (paths[: max(workers, 1)], started)):
                    times[name].append(
                        predict_seconds(some, args.weights, args.backend, Path(folder)) if not workers
                        else ray_seconds(some, args.weights, args.backend, workers, args.batch_size)
                    )  # fmt: skip
    ray.shutdown()
    print(f"{len(paths)} images ({args.repeat} x {args.images}), {Path(args.weights).name}, backend {args.backend}, "
          f"{cpus} CPUs ({cpu_name()}), median of {args.rounds} rounds")  # fmt: skip
    print(f"  {'':<16} {'whole':>8} {'images/s':>9} {'start-up':>9} {'after it':>9}  after start-up, against 1 worker")
    rates = {}
    for name in runs:
        total, start = statistics.median(whole[name]), statistics.median(started[name])
        rates[name] = (len(paths), total, start, len(paths) / max(total - start, 1e-9))
    for name, (count, total, start, rate) in rates.items():
        ratio = rate / rates["ray, 1 worker"][3]
        print(f"  {name:<16} {total:7.1f}s {count / total:9.1f} {start:8.1f}s {rate:9.1f}  {ratio:5.2f}x")


if __name__ == "__main__":
    main()
