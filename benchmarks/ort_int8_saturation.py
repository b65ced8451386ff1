"""ONNX Runtime's int8 on this CPU: 8-bit weights everywhere, and 7 bits for the layers it multiplies as matrices
(what ``deploy`` quantizes where that CPU has no VNNI), each computed by ONNX Runtime's int8 kernels and exactly
(graph optimisation off: every QuantizeLinear/DequantizeLinear pair in float, so nothing saturates).

    python benchmarks/ort_int8_saturation.py [--shared ../shared] [--threads 2]

Coral's MobileNetV2 1.0 at 224 on the 500 imagenet-sample images, calibrated on 100 imagenette/train images (in
neither set): top-1 and agreement with float's top-1, and ms per batch of 8 (interleaved rounds). Where the kernels
and the exact computation of the same file differ, the kernels lose what the file holds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import onnx
import torch

from mobilenet.data.images import image_batch
from mobilenet.inference.export import onnx_proto
from mobilenet.inference.optimize import fold_batchnorm
from mobilenet.runtimes.onnxruntime import ort_session
from mobilenet.runtimes.quantize import int8_products_saturate, quantize_onnx
from mobilenet.utils.machine import cpu_name
from mobilenet.weights import load_model

WEIGHTS = "weights/mobilenet_v2_1.0_224_quant.tflite"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    data = args.shared / "data"
    if not (data / WEIGHTS).is_file():
        raise SystemExit(f"needs {data / WEIGHTS} (../shared's data): pass --shared")
    torch.set_num_threads(args.threads)
    model = load_model(data / WEIGHTS).eval()
    index = json.loads((data / "imagenet_class_index.json").read_text())
    synsets = {synset: int(k) for k, (synset, _) in index.items()}
    files = sorted((data / "imagenet-sample").glob("*.JPEG"))
    labels = torch.tensor([synsets[f.name.split("_")[0]] for f in files])
    images = image_batch(files, model.preprocessing)
    calibration = image_batch(data / "imagenette/train", model.preprocessing, 100)
    with torch.no_grad():
        float_top1 = model(images).argmax(1)
    print(f"{cpu_name()}: int8 products saturate here: {int8_products_saturate()}; {len(files)} images, "
          f"float top-1 {(float_top1 == labels).float().mean():.1%}")  # fmt: skip
    timed = {}
    with tempfile.TemporaryDirectory() as directory:
        source = Path(directory) / "float.onnx"
        onnx.save(onnx_proto(fold_batchnorm(model), images[:2]), source)
        for seven_bit in (False, True):
            name = "7-bit matrix-product weights" if seven_bit else "8-bit weights"
            target = Path(directory) / f"int8_{seven_bit}.onnx"
            quantize_onnx(source, target, calibration, seven_bit_products=seven_bit)
            for exact in (False, True):
                run = ort_session(target, args.threads, optimized=not exact)
                top1 = torch.cat([torch.from_numpy(run.run(None, {"images": x.numpy()})[0]).argmax(1)
                                  for x in images.split(50)])  # fmt: skip
                how = "exactly" if exact else "ORT's kernels"
                print(f"{name}, {how}: top-1 {(top1 == labels).float().mean():.1%}, "
                      f"agrees with float {(top1 == float_top1).float().mean():.1%}", flush=True)  # fmt: skip
                if not exact:
                    timed[name] = run
        batch = {"images": images[:8].numpy()}
        times: dict[str, list[float]] = {name: [] for name in timed}
        for _ in range(args.rounds):
            for name, run in timed.items():
                run.run(None, batch)
                start = time.perf_counter()
                for _ in range(5):
                    run.run(None, batch)
                times[name].append((time.perf_counter() - start) / 5 * 1000)
    for name, values in times.items():
        print(f"{name}: {statistics.median(values):.1f} ms per batch of 8 ({args.threads} threads, median of "
              f"{args.rounds} rounds)")  # fmt: skip


if __name__ == "__main__":
    main()
