"""Export to ExecuTorch (.pte), PyTorch's own format for phones: fp32, or int8 calibrated on real images, checked in
ExecuTorch's runtime before the file is kept.

The program is lowered from the model with BatchNorm folded (see :mod:`mobilenet.runtimes.executorch`), takes one
float image and carries mobilenet's metadata, so that ``load_deployed`` (``predict``, ``eval``, ``serve``,
``bench``) runs it as it was saved. A detector's program gives its raw outputs and its anchors, as its ONNX file does
(see :class:`mobilenet.inference.export.DetectorOutputs`).

An fp32 program must give PyTorch's outputs (to ``tolerance``); an int8 one is reported, not refused: how often its
classes (a classifier's top-1, a segmenter's pixels, a detector's anchors) are the float model's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from mobilenet.data.images import ImageSource, image_batch
from mobilenet.inference.export import (
    ExportReport,
    class_agreement,
    compare_outputs,
    is_detector,
    model_outputs,
    model_preprocessing,
    output_names,
    prepare_export,
)
from mobilenet.runtimes.executorch import KEY_OUTPUTS, ExecuTorchProgram, lower
from mobilenet.utils.files import atomic_path
from mobilenet.weights.format import model_metadata


@dataclass(frozen=True)
class ProgramReport(ExportReport):
    """An :class:`ExportReport` of a .pte file, with its precision and what it was calibrated on (int8)."""

    precision: str = "fp32"
    calibrated_on: int = 0  # images


def export_executorch(
    model: nn.Module,
    path: str | Path,
    inputs: ImageSource | None = None,
    precision: str = "fp32",
    calibration: ImageSource | None = None,
    tolerance: float = 1e-4,
    limit: int = 8,
    calibration_limit: int = 100,
    threads: int | None = None,
) -> ProgramReport:
    """Write ``model`` (any kind) as an ExecuTorch program on XNNPACK, checked in ExecuTorch's runtime on
    ``inputs`` (images; random if None) against PyTorch. ``precision="int8"`` calibrates on ``calibration`` (up to
    ``calibration_limit`` real images, required). Needs ``pip install 'mobilenet[executorch]'``."""
    if precision not in ("fp32", "int8"):
        raise ValueError(f"unknown precision {precision!r} for ExecuTorch: use 'fp32' or 'int8'")
    if precision == "int8" and calibration is None:
        raise ValueError("an int8 ExecuTorch program is calibrated on real images: pass calibration (a folder)")
    reference, folded, batch, described = prepare_export(model, inputs, limit)
    images = None  # read only for int8: an fp32 program has nothing to calibrate
    if precision == "int8":
        images = image_batch(calibration, model_preprocessing(model), calibration_limit)
    metadata = {**model_metadata(model), KEY_OUTPUTS: json.dumps(output_names(folded))}
    program = lower(folded.eval(), batch, metadata, images)
    with atomic_path(path) as tmp:
        tmp.write_bytes(program)
        runtime = ExecuTorchProgram(tmp, threads)
        outputs = runtime(batch)
        expected = model_outputs(reference, batch)
        if precision == "fp32":
            diff, _ = compare_outputs(expected, [o.numpy() for o in outputs], tolerance, "the ExecuTorch program")
            agreement = None
        else:
            diff = max(float(np.abs(e - o.numpy()).max()) for e, o in zip(expected, outputs, strict=True))
            agreement = class_agreement(expected, outputs, detector=is_detector(model))
    calibrated = 0 if images is None else len(images)
    size = Path(path).stat().st_size
    return ProgramReport(Path(path), "executorch", size, diff, described, agreement, precision, calibrated)
