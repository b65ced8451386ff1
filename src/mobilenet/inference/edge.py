"""Full-integer TFLite for phones and the Coral Edge TPU: int8 weights and activations, int8 NHWC input and output.

Google's tools, in two steps: ``litert-torch`` converts the model (BatchNorm folded) to a float TFLite file
with channels-last input and output, and ``ai-edge-quantizer`` quantizes it statically (its
``static_wi8_ai8`` recipe: int8 weights per channel, int8 activations), calibrated on real images. The
file's input is the normalized image quantized with the file's own scale and zero point, as TFLite's
image pipelines feed it; the normalization itself is stored in the file's metadata
(``PREPROCESSING_METADATA``), where our importer reads it back. The file is checked with Google's runtime
before it is kept: top-1 agreement with the float model on the check images. (litert-torch's own PT2E
route gave int8 files whose outputs agreed with the float model on a third of the images here, against
two thirds this way for MobileNetV1 0.25: see BENCHMARKS.md.)
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
from mobilenet.nn.model import MobileNet
from mobilenet.nn.preprocessing import Preprocessing
from mobilenet.runtimes import litert
from mobilenet.runtimes.litert import interpreter, outputs
from mobilenet.utils.files import atomic_path
from mobilenet.weights.tflite import PREPROCESSING_METADATA

# litert-torch pins its own versions of pydantic and typing_extensions: it lives in an environment of its own.
LITERT_SETUP = (
    "from the repository root, python -m venv litert && litert/bin/pip install torch==2.13.0 litert-torch "
    "ai-edge-quantizer ai-edge-litert -e '.[tflite]', then litert/bin/mobilenet export ..."
)
# The output's int8 range is the calibration logits' widened by this factor: ai-edge-quantizer's moving
# average of per-image extremes put the maximum below half the images' top logit, which then saturated
# and tied (LiteRT's argmax then takes the first of the tied classes).
OUTPUT_HEADROOM = 1.25


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
    model; the report gives how often their top-1 agree. The input's int8 range is every pixel value once
    normalized (for Google's ``(x - 128) / 128`` it is exactly ``pixel - 128``), the output's the
    calibration logits' times ``OUTPUT_HEADROOM``; the other activations keep the calibrated ranges.
    """
    litert_torch, quantizer, recipe = litert_modules()
    litert_runtime()
    if not isinstance(model, MobileNet) or model.num_classes == 0:
        kind = getattr(model, "kind", "feature")
        raise ValueError(f"int8 TFLite export takes a classifier, not a {kind} model: its check compares top-1; "
                         "int8 runs the others through deploy(precision='int8')")  # fmt: skip
    pre = model.preprocessing
    folded = fold_batchnorm(model).eval()
    images = image_batch(calibration, pre, limit)
    channels_last = images.permute(0, 2, 3, 1).contiguous().numpy()
    with torch.inference_mode():
        logits = folded(images)
    with warnings.catch_warnings(), tempfile.TemporaryDirectory(prefix="mobilenet-edge-") as work:
        warnings.simplefilter("ignore")  # the converters' deprecation chatter
        float_file = Path(work) / "float.tflite"
        nhwc = litert_torch.to_channel_last_io(folded, args=[0]).eval()
        litert_torch.convert(nhwc, (torch.from_numpy(channels_last[:1]),)).export(str(float_file))
        float_model = _with_metadata(float_file.read_bytes(), PREPROCESSING_METADATA, pre.to_json())
        converted = interpreter(content=bytes(float_model))
        signature, details = next(iter(converted.get_signature_list().items()))
        (input_name,) = details["inputs"]
        quantizing = quantizer.Quantizer(float_model, recipe.static_wi8_ai8())
        calibrated = quantizing.calibrate({signature: [{input_name: image[None]} for image in channels_last]})
        # The input covers every pixel value (no clipping); the output, the logits with headroom (no saturation).
        (source,), (target,) = converted.get_input_details(), converted.get_output_details()
        low, high = logits.min().item() * OUTPUT_HEADROOM, logits.max().item() * OUTPUT_HEADROOM
        for name, (lowest, highest) in ((source["name"], _pixel_range(pre)), (target["name"], (low, high))):
            qsv = calibrated[name]
            calibrated[name] = {"min": np.full_like(qsv["min"], lowest), "max": np.full_like(qsv["max"], highest)}
        quantized = quantizing.quantize(calibrated).quantized_model
    checks = images if check is None else image_batch(check, pre, limit)
    with torch.inference_mode():
        expected = (logits if check is None else folded(checks)).argmax(1).numpy()
    with atomic_path(path) as tmp:
        tmp.write_bytes(bytes(quantized))
        written = interpreter(tmp)
        (source,), (target,) = written.get_input_details(), written.get_output_details()
        scale, zero = source["quantization"]
        if source["dtype"] != np.int8 or target["dtype"] != np.int8:
            raise RuntimeError(f"the converter left {source['dtype']} input / {target['dtype']} output; not written")
        got = litert_top1(written, checks)
    shape = "x".join(map(str, source["shape"]))
    described = f"int8 {shape}, scale {scale:.6g}, zero point {zero}"
    agreement = float(np.mean(got == expected))
    return EdgeReport(Path(path), Path(path).stat().st_size, described, len(images), len(checks), agreement)


def _pixel_range(pre: Preprocessing) -> tuple[float, float]:
    """The lowest and highest values that pixels 0..255 take once normalized by ``pre``, over the channels."""
    mean, std = np.array(pre.mean), np.array(pre.std)
    return float(np.min(-mean / std)), float(np.max((1 - mean) / std))


def _with_metadata(flatbuffer: bytes, name: str, text: str) -> bytearray:
    """A TFLite flatbuffer with ``text`` added as the model metadata entry ``name`` (ai-edge-quantizer keeps it)."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    buffer, entry = schema.BufferT(), schema.MetadataT()
    buffer.data = np.frombuffer(text.encode(), np.uint8)
    entry.name, entry.buffer = name, len(model.buffers)
    model.buffers.append(buffer)
    model.metadata = [*(model.metadata or []), entry]
    return flatbuffer_utils.convert_object_to_bytearray(model)


def litert_top1(runtime: Any, images: torch.Tensor) -> np.ndarray:
    """Top-1 of an allocated TFLite classifier for a preprocessed (N, C, H, W) batch, fed as the file says."""
    return outputs(runtime, images.permute(0, 2, 3, 1).numpy()).argmax(1)


def top1_agreement(ours: np.ndarray, reference: np.ndarray) -> float:
    """How often our top-1 is one of LiteRT's top classes, for (N, classes) outputs of the same images.

    int8 outputs can tie, and LiteRT's argmax then names the first of the tied classes, which a float
    model has no reason to prefer: a tie that includes ours counts as agreement.
    """
    best = reference.max(axis=1)
    return float(np.mean(reference[np.arange(len(reference)), ours.argmax(axis=1)] == best))


def litert_runtime() -> None:
    """Google's runtime, which checks the file, is installed: or one line saying how to get it."""
    if not litert.installed():
        raise ImportError(f"checking the TFLite file needs Google's runtime, ai-edge-litert: {LITERT_SETUP}")
