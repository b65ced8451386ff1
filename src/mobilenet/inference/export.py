"""Export to ONNX, TorchScript and TFLite, each checked against PyTorch on the inputs given before it is kept.

Every export has BatchNorm folded (inference graphs only), a dynamic batch dimension where the format
allows it, and the model's config, class names and preprocessing in the file's metadata. Any model of the
package exports (a classifier, its features, a Mobile DeepLabv3, an SSD detector); ``argmax=True`` writes class
indices instead of logits, which saves a segmentation model's users the (N, classes, H, W) float output.

A detector's file gives its raw outputs and its anchors (see :class:`DetectorOutputs`); NMS is not in the graph.
TF's per-class NMS (on equal scores, lower class then lower anchor first) and TF Lite's class-agnostic fast NMS
are both in :func:`mobilenet.detection.postprocess.postprocess`, which runs on any backend's outputs alike.
ONNX's ``NonMaxSuppression`` differs from both: ONNX Runtime pops equal scores in heap order, not anchor order;
it keeps scores above the threshold where TF Lite keeps those at least at it; and it gives indices class by
class, with no merge by score across classes, no cap on the total, no clipping. In the graph, it would make an
exported detector's detections differ from PyTorch's and from Google's files'.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mobilenet.data.images import ImageSource, image_batch
from mobilenet.inference.optimize import fold_batchnorm
from mobilenet.inference.tflite_aten import export_graph
from mobilenet.inference.tflite_lower import Lowering
from mobilenet.nn.features import MobileNetFeatures
from mobilenet.nn.preprocessing import Preprocessing
from mobilenet.runtimes.litert import interpreter
from mobilenet.runtimes.onnxruntime import ort_session
from mobilenet.utils.files import atomic_path
from mobilenet.utils.optional import require
from mobilenet.weights.format import model_metadata


@dataclass(frozen=True)
class ExportReport:
    """What an export wrote and how closely the file's outputs matched PyTorch's."""

    path: Path
    format: str
    file_size: int  # bytes
    max_abs_diff: float | None  # over every float output, against the unexported model in float32 (None: none)
    verified_on: str  # e.g. "8 images from val/" or "2 random inputs"
    class_agreement: float | None = None  # argmax exports: the share of class indices equal to PyTorch's


# The least share of class indices an argmax export must give as PyTorch does: only near-ties may flip.
MIN_CLASS_AGREEMENT = 0.999


class ClassIndices(nn.Module):
    """A model whose logits (class on dim 1) are reduced to class indices: (N, H, W) for a segmentation model."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).argmax(dim=1)


class DetectorOutputs(nn.Module):
    """A detector whose outputs end with its anchors: ``(box_codes [N, A, 4], class_logits [N, A, C], anchors
    [A, 4])``, anchors (cy, cx, h, w) normalized, a constant of the exported graph.

    An output rather than metadata: any runtime returns it with no mobilenet code (or reads it from the file's
    initializers without running), in exact float32 where metadata would be text, and a quantizer leaves it
    alone (no operation reads it). It costs a copy of A x 4 floats per call, against the A x C logits.
    """

    def __init__(self, model: nn.Module, anchors: torch.Tensor) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("anchors", anchors.detach().clone())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        box_codes, class_logits = self.model(x)
        return box_codes, class_logits, self.anchors


def is_detector(model: nn.Module) -> bool:
    """Whether ``model`` is a detector: its outputs are box codes and logits relative to its ``anchors(h, w)``.

    Asked of the model, not of its class: inference imports no task package (the tasks that import it would
    import each other through it).
    """
    return callable(getattr(model, "anchors", None))


def _describe_source(source: ImageSource | None, batch: torch.Tensor) -> str:
    if source is None:
        return f"{len(batch)} random inputs"
    if isinstance(source, torch.Tensor):
        return f"{len(batch)} given inputs"
    where = f" from {source}" if isinstance(source, str | Path) else ""
    return f"{len(batch)} images{where}"


def model_preprocessing(model: nn.Module) -> Preprocessing:
    """The preprocessing a model expects: its own, or (MobileNetFeatures) the default at its input size."""
    return getattr(model, "preprocessing", None) or Preprocessing(input_size=model.config.input_size)


def prepare_export(
    model: nn.Module, inputs: ImageSource | None, limit: int, argmax: bool = False
) -> tuple[nn.Module, nn.Module, torch.Tensor, str]:
    """The reference (the model in eval mode), its folded copy to export, the check batch, its description."""
    if not hasattr(model, "config"):
        raise ValueError(f"expected a model of mobilenet's (one with a config), got {type(model).__name__}")
    if argmax and isinstance(model, MobileNetFeatures):
        raise ValueError("argmax needs a model with logits: a features-only model has no classes; leave out argmax")
    if argmax and is_detector(model):
        raise ValueError("argmax writes class maps: a detector's outputs are box codes and logits; leave out argmax")
    pre = model_preprocessing(model)
    if inputs is None:
        batch = torch.randn(2, model.config.in_chans, pre.input_size, pre.input_size)
    else:
        batch = image_batch(inputs, pre, limit)
    # Checked against the unfolded model, so that the reported difference includes the folding's.
    reference, folded = copy.deepcopy(model).eval(), fold_batchnorm(model)
    if argmax:
        reference, folded = ClassIndices(reference), ClassIndices(folded)
    if is_detector(model):
        anchors = model.anchors(pre.input_size, pre.input_size)
        reference, folded = DetectorOutputs(reference, anchors), DetectorOutputs(folded, anchors)
    return reference, folded, batch, _describe_source(inputs, batch)


def model_outputs(model: nn.Module, batch: torch.Tensor) -> list[np.ndarray]:
    with torch.inference_mode():
        out = model(batch)
    return [o.numpy() for o in (out if isinstance(out, list | tuple) else [out])]


def compare_outputs(
    reference: list[np.ndarray], exported: list[np.ndarray], tolerance: float, what: str
) -> tuple[float | None, float | None]:
    """The largest difference over the float outputs and the least share of equal class indices over the
    integer ones (None where there are none); an error if the difference exceeds ``tolerance`` x the output
    range, or the agreement falls below ``MIN_CLASS_AGREEMENT``."""
    if len(reference) != len(exported):
        raise RuntimeError(f"{what} gives {len(exported)} outputs where PyTorch gives {len(reference)}")
    pairs = list(zip(reference, exported, strict=True))
    floats = [(r, np.asarray(e, np.float32)) for r, e in pairs if np.issubdtype(r.dtype, np.floating)]
    classes = [(r, np.asarray(e)) for r, e in pairs if not np.issubdtype(r.dtype, np.floating)]
    diff = max((float(np.abs(r - e).max()) for r, e in floats), default=None)
    scale = max([1.0, *(float(np.abs(r).max()) for r, _ in floats)])
    if diff is not None and not diff <= tolerance * scale:  # also catches NaN
        raise RuntimeError(f"{what} differs from PyTorch by {diff:.3g} (allowed {tolerance * scale:.3g}); not written")
    agreement = min((float((r == e).mean()) for r, e in classes), default=None)
    if agreement is not None and agreement < MIN_CLASS_AGREEMENT:
        raise RuntimeError(
            f"{what} gives PyTorch's class on {agreement:.2%} of outputs (needs {MIN_CLASS_AGREEMENT:.1%}); not written"
        )
    return diff, agreement


def class_agreement(reference: list[np.ndarray], got: list[torch.Tensor], detector: bool) -> float:
    """The share of classes (argmax over the class axis of the first float output with classes) that ``got`` gives
    as ``reference`` does: a classifier's (N, C) logits, a segmenter's (N, C, H, W), a detector's (N, A, C)."""
    index = 1 if detector else 0
    axis = -1 if detector else 1
    ours = np.asarray(got[index]).argmax(axis)
    return float((ours == reference[index].argmax(axis)).mean())


def _verify(
    reference: nn.Module,
    run: Callable[[torch.Tensor], list[np.ndarray]],
    batch: torch.Tensor,
    tolerance: float,
    what: str,
) -> tuple[float | None, float | None]:
    """:func:`compare_outputs` on the batch and on its first image alone (the batch dimension must be dynamic)."""
    checks = [compare_outputs(model_outputs(reference, b), run(b), tolerance, what) for b in (batch, batch[:1])]
    diffs = [diff for diff, _ in checks if diff is not None]
    agreements = [agreement for _, agreement in checks if agreement is not None]
    return max(diffs, default=None), min(agreements, default=None)


def output_names(model: nn.Module) -> list[str]:
    if isinstance(model, MobileNetFeatures):
        return [info.module for info in model.feature_info]
    if is_detector(model) or isinstance(model, DetectorOutputs):
        return ["box_codes", "class_logits"] + (["anchors"] if isinstance(model, DetectorOutputs) else [])
    return ["classes"] if isinstance(model, ClassIndices) else ["logits"]


@contextlib.contextmanager
def activations_out_of_place(model: nn.Module) -> Iterator[None]:
    """``model``'s in-place activations (``ReLU6(inplace=True)``) out of place for a while: the exporter decomposes an
    in-place one through PyTorch's reference clamp, which costs most of its time (a MobileNetV2 exports in 3.6 s
    instead of 5.7, a detector in 4.7 instead of 11.8), into the same ``Clip``."""
    changed = [module for module in model.modules() if getattr(module, "inplace", False) is True]
    for module in changed:
        module.inplace = False
    try:
        yield
    finally:
        for module in changed:
            module.inplace = True


def onnx_proto(model: nn.Module, batch: torch.Tensor, opset: int | None = None):
    """``model`` (BatchNorm already folded) as an ONNX ``ModelProto``: input ``images`` with a dynamic batch."""
    require("onnxscript", "onnx")  # torch's exporter needs it, and says so less clearly
    example = batch[:2] if len(batch) >= 2 else batch.expand(2, -1, -1, -1)  # batch 1 would be specialised
    # Its initializer deduplication logs a warning for every initializer that is an output: a detector's anchors.
    deduplication = logging.getLogger("onnx_ir.passes.common.initializer_deduplication")
    level = deduplication.level
    deduplication.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), activations_out_of_place(model):
            warnings.simplefilter("ignore")  # the exporter's deprecation chatter, not the user's business
            program = torch.onnx.export(
                model, (example,), None, input_names=["images"], output_names=output_names(model),
                opset_version=opset, dynamic_shapes=({0: torch.export.Dim("batch")},), dynamo=True, verbose=False,
            )  # fmt: skip
    finally:
        deduplication.setLevel(level)
    return program.model_proto


def export_onnx(
    model: nn.Module,
    path: str | Path,
    inputs: ImageSource | None = None,
    opset: int | None = None,
    tolerance: float = 1e-4,
    limit: int = 8,
    argmax: bool = False,
) -> ExportReport:
    """Write ``model`` as ONNX with a dynamic batch dimension, after checking it with ONNX Runtime.

    ``inputs`` (images or a tensor batch; random if None, which checks the graph but not real data)
    run through the file and through PyTorch; their largest difference must stay within
    ``tolerance`` x the outputs' magnitude, or nothing is written. Input ``images``, outputs
    ``logits`` (or one per feature map; a detector's ``box_codes``, ``class_logits`` and ``anchors``, see
    :class:`DetectorOutputs`); ``argmax=True``: ``classes``, the int64 class indices, which must
    equal PyTorch's on ``MIN_CLASS_AGREEMENT`` of them. Needs ``pip install 'mobilenet[onnx]'``.
    """
    onnx = require("onnx", "onnx")
    reference, folded, batch, described = prepare_export(model, inputs, limit, argmax)
    proto = onnx_proto(folded, batch, opset)
    onnx.helper.set_model_props(proto, model_metadata(model))
    with atomic_path(path) as tmp:
        onnx.save(proto, tmp)
        session = ort_session(tmp)
        diff, agreement = _verify(
            reference, lambda b: session.run(None, {"images": b.numpy()}), batch, tolerance, "the ONNX file"
        )
    return ExportReport(Path(path), "onnx", Path(path).stat().st_size, diff, described, agreement)


def export_torchscript(
    model: nn.Module,
    path: str | Path,
    inputs: ImageSource | None = None,
    tolerance: float = 1e-4,
    limit: int = 8,
    argmax: bool = False,
) -> ExportReport:
    """Write ``model`` as a traced TorchScript file (any batch size), checked as :func:`export_onnx` is.

    The metadata strings are extra files in the archive: ``torch.jit.load(path, _extra_files=...)``.
    """
    reference, folded, batch, described = prepare_export(model, inputs, limit, argmax)
    with warnings.catch_warnings():
        # Tracing records TF "SAME" padding for the traced resolution, which is the model's own.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(folded, batch[:2], strict=False, check_trace=False)
    with atomic_path(path) as tmp:
        torch.jit.save(traced, str(tmp), _extra_files=model_metadata(model))
        loaded = torch.jit.load(str(tmp))
        diff, agreement = _verify(
            reference, lambda b: model_outputs(loaded, b), batch, tolerance, "the TorchScript file"
        )
    return ExportReport(Path(path), "torchscript", Path(path).stat().st_size, diff, described, agreement)


def export_tflite(
    model: nn.Module, path: str | Path, inputs: ImageSource | None = None, tolerance: float = 1e-4, limit: int = 8
) -> ExportReport:
    """Write ``model`` as a float TFLite file (batch 1, NHWC float input of the preprocessed image, 4-D outputs
    channels-last), written by our own TFLite writer (:mod:`mobilenet.inference.tflite_lower`).

    Checked image by image with Google's runtime (``ai-edge-litert``). The model's metadata (config, classes,
    preprocessing) is stored as the file's metadata entries, under the same keys as in our other formats.
    """
    reference, folded, batch, described = prepare_export(model, inputs, limit)
    lowered = Lowering(export_graph(folded, batch.shape[-1]), None, None).lower()
    file = lowered.file
    file.metadata.extend((key, value.encode()) for key, value in model_metadata(model).items())
    content = file.serialize([lowered.input], lowered.outputs, f"{type(model).__name__} (float32), by mobilenet")
    with atomic_path(path) as tmp:
        tmp.write_bytes(content)
        runtime = interpreter(tmp)
        source, targets = runtime.get_input_details()[0], runtime.get_output_details()
        rows = []
        for image in batch.split(1):
            runtime.set_tensor(source["index"], image.permute(0, 2, 3, 1).numpy())
            runtime.invoke()
            rows.append([runtime.get_tensor(t["index"]) for t in targets])
        outputs = []
        for column, layout in zip(zip(*rows, strict=True), lowered.layouts, strict=True):
            joined = column[0] if layout == "constant" else np.concatenate(column)
            outputs.append(joined.transpose(0, 3, 1, 2) if layout == "nhwc" else joined)
        diff, _ = compare_outputs(model_outputs(reference, batch), outputs, tolerance, "the TFLite file")
    return ExportReport(Path(path), "tflite", Path(path).stat().st_size, diff, described)
