"""Full-integer TFLite for phones and the Coral Edge TPU: int8 weights and activations, int8 NHWC input and output.

Google's tools, in two steps: ``litert-torch`` converts the model (BatchNorm folded) to a float TFLite file
with channels-last input and output, and ``ai-edge-quantizer`` quantizes it statically (its
``static_wi8_ai8`` recipe: int8 weights per channel, int8 activations), calibrated on real images. The
file's input is the normalized image quantized with the file's own scale and zero point, as TFLite's
image pipelines feed it. The file is checked with Google's runtime before it is kept: top-1 agreement
with the float model on the check images. (litert-torch's own PT2E route gave int8 files whose outputs
agreed with the float model on a third of the images here, against two thirds this way for MobileNetV1
0.25: see BENCHMARKS.md.)
"""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mobilenet.data.images import ImageSource, image_batch
from mobilenet.inference.optimize import fold_batchnorm
from mobilenet.utils.files import atomic_path

# litert-torch pins its own versions of pydantic and typing_extensions: it lives in an environment of its own.
LITERT_SETUP = (
    "from the repository root, python -m venv litert && litert/bin/pip install torch==2.13.0 litert-torch "
    "ai-edge-quantizer ai-edge-litert -e '.[tflite]', then litert/bin/mobilenet export ..."
)


@dataclass(frozen=True)
class EdgeReport:
    path: Path
    file_size: int  # bytes
    input: str  # dtype, NHWC shape, scale and zero point of the file's input
    calibrated_on: int  # images
    checked_on: int  # images
    top1_agreement: float  # LiteRT's top-1 against the float model's on the check images


def litert_modules():
    """litert-torch and ai-edge-quantizer, or one line saying how to get them."""
    try:
        import litert_torch
        from ai_edge_quantizer import quantizer, recipe
    except ImportError:
        raise ImportError(
            f"int8 TFLite export needs Google's litert-torch and ai-edge-quantizer: {LITERT_SETUP}"
        ) from None
    return litert_torch, quantizer, recipe


def export_tflite_int8(
    model: nn.Module, path: str | Path, calibration: ImageSource, check: ImageSource | None = None, limit: int = 200
) -> EdgeReport:
    """Write ``model`` as a full-integer TFLite file, calibrated on ``calibration`` (up to ``limit`` images).

    ``check`` (default: the calibration images) is run through the file by LiteRT and through the float
    model; the report gives how often their top-1 agree.
    """
    litert_torch, quantizer, recipe = litert_modules()
    interpreter_type = litert_interpreter()
    if getattr(model, "num_classes", 0) == 0:
        raise ValueError("int8 TFLite export needs a classifier (num_classes > 0): its check compares top-1")
    pre = model.preprocessing
    folded = fold_batchnorm(model).eval()
    images = image_batch(calibration, pre, limit)
    channels_last = images.permute(0, 2, 3, 1).contiguous().numpy()
    with warnings.catch_warnings(), tempfile.TemporaryDirectory(prefix="mobilenet-edge-") as work:
        warnings.simplefilter("ignore")  # the converters' deprecation chatter
        float_file = Path(work) / "float.tflite"
        nhwc = litert_torch.to_channel_last_io(folded, args=[0]).eval()
        litert_torch.convert(nhwc, (torch.from_numpy(channels_last[:1]),)).export(str(float_file))
        signatures = interpreter_type(model_path=str(float_file)).get_signature_list()
        signature, details = next(iter(signatures.items()))
        (input_name,) = details["inputs"]
        quantizing = quantizer.Quantizer(str(float_file), recipe.static_wi8_ai8())
        calibrated = quantizing.calibrate({signature: [{input_name: image[None]} for image in channels_last]})
        quantized = quantizing.quantize(calibrated).quantized_model
    checks = images if check is None else image_batch(check, pre, limit)
    with torch.inference_mode():
        expected = folded(checks).argmax(1).numpy()
    with atomic_path(path) as tmp:
        tmp.write_bytes(bytes(quantized))
        interpreter = interpreter_type(model_path=str(tmp))
        interpreter.allocate_tensors()
        (source,), (target,) = interpreter.get_input_details(), interpreter.get_output_details()
        scale, zero = source["quantization"]
        if source["dtype"] != np.int8 or target["dtype"] != np.int8:
            raise RuntimeError(f"the converter left {source['dtype']} input / {target['dtype']} output; not written")
        got = litert_top1(interpreter, checks)
    shape = "x".join(map(str, source["shape"]))
    described = f"int8 {shape}, scale {scale:.6g}, zero point {zero}"
    agreement = float(np.mean(got == expected))
    return EdgeReport(Path(path), Path(path).stat().st_size, described, len(images), len(checks), agreement)


def litert_top1(interpreter: Any, images: torch.Tensor) -> np.ndarray:
    """Top-1 of an allocated TFLite classifier for a preprocessed (N, C, H, W) batch, fed as the file says.

    A float input takes the images as they are; an integer one takes them quantized with the file's own
    scale and zero point, as TFLite's image pipelines feed it.
    """
    (source,), (target,) = interpreter.get_input_details(), interpreter.get_output_details()
    dtype = source["dtype"]
    scale, zero = source["quantization"]
    predictions = []
    for image in images.permute(0, 2, 3, 1).numpy():
        if dtype != np.float32:
            bounds = np.iinfo(dtype)
            image = np.clip(np.round(image / scale + zero), bounds.min, bounds.max)
        interpreter.set_tensor(source["index"], image[None].astype(dtype))
        interpreter.invoke()
        predictions.append(int(interpreter.get_tensor(target["index"])[0].argmax()))
    return np.array(predictions)


def litert_interpreter():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise ImportError(f"checking the TFLite file needs Google's runtime, ai-edge-litert: {LITERT_SETUP}") from None
    return Interpreter
