"""``deploy``: a model as the fastest inference callable this machine has, on PyTorch, ONNX Runtime or OpenVINO.

Whatever runs underneath, the result maps a float (N, C, H, W) batch to logits (or to the feature maps
of a features-only model) as float32 tensors.
"""

from __future__ import annotations

import importlib.util
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mobilenet.data import ImageSource, image_batch
from mobilenet.export import metadata, model_preprocessing, onnx_proto, require
from mobilenet.model import MobileNet
from mobilenet.optimize import bf16_supported, fold_batchnorm, optimize
from mobilenet.quantize import check_method, quantize_nncf, quantize_onnx
from mobilenet.weights import _META_CLASSES, _META_CONFIG, _META_PRE, Checkpoint, load_model, with_metadata

BACKENDS = ("torch", "onnxruntime", "openvino", "eager")
PRECISIONS: dict[str, tuple[str, ...]] = {
    "eager": ("fp32",),  # the model as it is, unfolded: a reference, never chosen by "auto"
    "torch": ("fp32", "bf16"),
    "onnxruntime": ("fp32", "int8"),
    "openvino": ("fp32", "bf16", "int8"),
}
# The Python modules each backend needs, and the extra that installs them.
_NEEDS = {
    "eager": (),
    "torch": (),
    "onnxruntime": ("onnxruntime", "onnx", "onnxscript"),
    "openvino": ("openvino", "onnx", "onnxscript"),
}
_EXTRA = {"onnxruntime": "onnx", "openvino": "openvino"}
# backend="auto" takes the first installed backend of each list. The order is measured (MobileNetV2
# 1.0@224 on a 2-core AVX-512 VNNI + bf16 CPU, interleaved; benchmarks/deploy_accuracy.py): in fp32
# ONNX Runtime beats OpenVINO forced to fp32 by 10-25% (b1 and b32) and PyTorch eager by 2-5x; in bf16
# OpenVINO is ~2.4x PyTorch; in int8 the two tie at batch 1 and OpenVINO (NNCF) leads at batch 32 by
# 15-50%, with the better top-1 agreement with fp32.
AUTO: dict[str, tuple[str, ...]] = {
    "fp32": ("onnxruntime", "openvino", "torch"),
    "bf16": ("openvino", "torch"),
    "int8": ("openvino", "onnxruntime"),
}
Runner = Callable[[torch.Tensor], list[torch.Tensor]]
Built = tuple[Runner, int]  # the runner and the size in bytes of the weights or file it runs from


def available_backends(precision: str = "fp32") -> list[str]:
    """The backends installed here that can run ``precision``, in ``backend="auto"``'s order of preference."""
    _check_precision(precision)
    return [name for name in AUTO[precision] if _installed(name, precision)]


def _installed(backend: str, precision: str) -> bool:
    needs = _NEEDS[backend] + (("nncf",) if backend == "openvino" and precision == "int8" else ())
    return all(importlib.util.find_spec(module) is not None for module in needs)


def _check_precision(precision: str) -> None:
    if precision not in AUTO:
        raise ValueError(f"unknown precision {precision!r}: use 'fp32', 'bf16' or 'int8'")


class Deployed:
    """A model ready for inference on one backend. Call it with a float (N, C, H, W) batch.

    Not thread-safe (OpenVINO reuses one infer request): make one per thread. It carries the source
    model's ``config``, ``class_names`` and ``preprocessing``; ``size_bytes`` is the size of what it runs
    from (the ONNX file, the OpenVINO IR, or PyTorch's folded weights).
    """

    def __init__(self, model: nn.Module, backend: str, precision: str, built: Built, method: str | None) -> None:
        self.backend, self.precision, self.calibration_method = backend, precision, method
        self._run, self.size_bytes = built
        self.config = model.config
        self.class_names: list[str] | None = getattr(model, "class_names", None)
        self.preprocessing = getattr(model, "preprocessing", None)
        self.input_size = self.preprocessing.input_size if self.preprocessing else model.config.input_size

    def __call__(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        # ONNX Runtime and OpenVINO graphs are exported for one resolution (TF padding depends on it).
        expected = (self.config.in_chans, self.input_size, self.input_size)
        if x.dim() != 4 or (self.backend not in ("torch", "eager") and tuple(x.shape[1:]) != expected):
            raise ValueError(
                f"expected a float batch of shape (N, {', '.join(map(str, expected))}), got {tuple(x.shape)}"
            )
        outputs = self._run(x.detach().float().contiguous())
        return outputs[0] if len(outputs) == 1 else outputs

    def __repr__(self) -> str:
        method = f", calibration={self.calibration_method}" if self.calibration_method else ""
        return (
            f"Deployed({self.config.arch} width {self.config.width_mult:g}, {self.backend}, {self.precision}{method})"
        )


def deploy(
    model: nn.Module,
    backend: str = "auto",
    precision: str = "fp32",
    calibration: ImageSource | None = None,
    threads: int | None = None,
    calibration_method: str | None = None,
    calibration_size: int = 100,
) -> Deployed:
    """``model`` (a MobileNet or MobileNetFeatures) as a callable from a float batch to float32 outputs.

    ``backend``: "torch" (:func:`~mobilenet.optimize.optimize`), "onnxruntime", "openvino", "auto"
    (the fastest installed for the precision, see ``AUTO``) or "eager" (the model as it is).
    ``precision``: "fp32", "bf16" (CPUs with native bf16) or "int8", which calibrates on
    ``calibration``: a folder of images, image files or a preprocessed tensor batch,
    ``calibration_size`` images at most, ranges by ``calibration_method`` (see
    ``mobilenet.quantize.METHODS``; None is the backend's default). ``threads`` sets the backend's
    thread count (for PyTorch, process-wide); None leaves the backend's default.
    """
    if not hasattr(model, "config"):
        raise ValueError(f"expected a MobileNet or MobileNetFeatures, got {type(model).__name__}")
    _check_precision(precision)
    if precision == "bf16" and not bf16_supported():
        raise ValueError("this CPU has no native bf16 (AVX512-BF16 or AMX): use precision='fp32'")
    if (calibration is None) != (precision != "int8"):
        raise ValueError(
            "int8 needs calibration images: pass calibration=<folder of images or tensor batch>"
            if precision == "int8"
            else f"calibration is only used for precision='int8', not {precision!r}: leave it out"
        )
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1 (or None for the backend's default), got {threads}")
    backend = _pick(backend, precision)
    method = check_method(backend, calibration_method) if precision == "int8" else None
    batch = None
    if calibration is not None:
        pre = model_preprocessing(model)
        batch, size = image_batch(calibration, pre, calibration_size), pre.input_size
        if tuple(batch.shape[1:]) != (model.config.in_chans, size, size):
            raise ValueError(f"calibration batch has shape {tuple(batch.shape)}; the model takes {size}x{size} inputs")
    built: Built
    if backend in ("torch", "eager"):
        if threads is not None:
            torch.set_num_threads(threads)
        built = _torch(model, precision) if backend == "torch" else _eager(model)
    elif backend == "onnxruntime":
        built = _onnxruntime(model, batch, method, threads)
    else:
        built = _openvino(model, precision, batch, method, threads)
    return Deployed(model, backend, precision, built, method)


def load_deployed(
    path: str | Path,
    backend: str = "auto",
    precision: str | None = None,
    calibration: ImageSource | None = None,
    threads: int | None = None,
) -> Deployed:
    """A model file ready for inference: weights (any file ``load_model`` reads) through :func:`deploy`
    (fp32 unless ``precision`` says), or an OpenVINO IR written by mobilenet (the int8 model of a
    quantization-aware training run, say), which runs on OpenVINO as it was saved.
    """
    path = Path(path)
    if path.suffix != ".xml":
        return deploy(load_model(path), backend, precision or "fp32", calibration, threads)
    if backend not in ("auto", "openvino") or calibration is not None:
        raise ValueError(f"{path} is an OpenVINO IR, which runs as it was saved: leave out the backend and calibration")
    ov = require("openvino", "openvino")
    network = ov.Core().read_model(path)
    keys = [key for key in (_META_CONFIG, _META_CLASSES, _META_PRE) if network.has_rt_info([key])]
    checkpoint = with_metadata(Checkpoint({}), {key: network.get_rt_info([key]).astype(str) for key in keys})
    if checkpoint.config is None:
        raise ValueError(f"{path} carries no mobilenet metadata (config, classes): run it with OpenVINO directly")
    saved = "int8" if any(op.get_type_name() == "FakeQuantize" for op in network.get_ops()) else "fp32"
    if precision not in (None, saved):
        raise ValueError(f"{path} is an {saved} IR and runs as {saved}: leave out the precision")
    model = MobileNet(checkpoint.config)  # carries the config, class names and preprocessing; never run
    model.class_names = checkpoint.class_names
    model.preprocessing = checkpoint.preprocessing or model.preprocessing
    return Deployed(model, "openvino", saved, (openvino_runner(network, saved, threads), ir_bytes(path)), None)


def _pick(backend: str, precision: str) -> str:
    if backend == "auto":
        installed = available_backends(precision)
        if not installed:
            raise ValueError(
                f"no installed backend runs {precision}: pip install 'mobilenet[onnx]' or 'mobilenet[openvino]'"
            )
        best = AUTO[precision][0]
        if installed[0] != best:
            warnings.warn(
                f"{best} is not installed; using {installed[0]}. pip install 'mobilenet[{_EXTRA[best]}]' runs "
                f"{precision} faster",
                stacklevel=3,
            )
        return installed[0]
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}: use 'auto' or one of {', '.join(BACKENDS)}")
    if precision not in PRECISIONS[backend]:
        others = [name for name in BACKENDS if precision in PRECISIONS[name]]
        raise ValueError(f"{backend} does not run {precision} here: use backend {' or '.join(others)}")
    if not _installed(backend, precision):
        missing = next(m for m in _NEEDS[backend] + ("nncf",) if importlib.util.find_spec(m) is None)
        raise ImportError(f"backend {backend!r} needs {missing}: pip install 'mobilenet[{_EXTRA[backend]}]'")
    return backend


def weight_bytes(module: nn.Module) -> int:
    """The size of a module's parameters and buffers in memory."""
    return sum(t.numel() * t.element_size() for t in module.state_dict().values())


def _in_memory(module: nn.Module) -> Built:
    """A PyTorch module as a runner: a list of outputs, whether it gives logits or feature maps."""

    @torch.inference_mode()
    def run(x: torch.Tensor) -> list[torch.Tensor]:
        outputs = module(x)
        return [outputs] if isinstance(outputs, torch.Tensor) else list(outputs)

    return run, weight_bytes(module)


def _eager(model: nn.Module) -> Built:
    return _in_memory(model.eval())


def _torch(model: nn.Module, precision: str) -> Built:
    # Eager: torch.compile would need a C++ compiler and minutes per batch size; optimize(compile=True)
    # is there for those who want it.
    return _in_memory(optimize(model, bf16=precision == "bf16"))


def _onnx_file(model: nn.Module, directory: Path) -> Path:
    """The folded model as a float ONNX file (dynamic batch) in ``directory``."""
    onnx = require("onnx", "onnx")
    size = model_preprocessing(model).input_size
    path = directory / "model.onnx"
    onnx.save(onnx_proto(fold_batchnorm(model), torch.randn(2, model.config.in_chans, size, size)), path)
    return path


def _onnxruntime(model: nn.Module, batch: torch.Tensor | None, method: str | None, threads: int | None) -> Built:
    ort = require("onnxruntime", "onnx")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or 0  # 0: ONNX Runtime's default, one per physical core
    options.inter_op_num_threads = 1  # a chain of convolutions has nothing to run in parallel
    with tempfile.TemporaryDirectory() as directory:
        path = _onnx_file(model, Path(directory))
        if batch is not None:
            quantize_onnx(path, path.with_name("int8.onnx"), batch, method)
            path = path.with_name("int8.onnx")
        onnx_bytes = path.read_bytes()
        session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    return lambda x: [torch.from_numpy(out) for out in session.run(None, {"images": x.numpy()})], len(onnx_bytes)


def _openvino(
    model: nn.Module, precision: str, batch: torch.Tensor | None, method: str | None, threads: int | None
) -> Built:
    ov = require("openvino", "openvino")
    with tempfile.TemporaryDirectory() as directory:
        # convert_model (not read_model): its constant folding gives NNCF the depthwise weights as constants.
        network = ov.convert_model(_onnx_file(model, Path(directory)))
        if batch is not None:
            network = quantize_nncf(network, batch, method)
        ir = save_openvino(network, Path(directory) / "model.xml", model)
        return openvino_runner(network, precision, threads), ir_bytes(ir)


def save_openvino(network: Any, path: Path, model: nn.Module) -> Path:
    """Write an OpenVINO IR (``path`` and its .bin) as it runs, fp32 or int8, with ``model``'s metadata."""
    ov = require("openvino", "openvino")
    for key, value in metadata(model).items():
        network.set_rt_info(value, [key])
    ov.save_model(network, path, compress_to_fp16=False)
    return path


def ir_bytes(path: Path) -> int:
    """The size of an OpenVINO IR: the .xml and its .bin."""
    return path.stat().st_size + path.with_suffix(".bin").stat().st_size


def openvino_runner(network: Any, precision: str, threads: int | None = None) -> Runner:
    """An ``openvino.Model`` compiled for this CPU, as a runner."""
    ov = require("openvino", "openvino")
    # OpenVINO's default on CPUs with bf16 is bf16: fp32 and int8 must ask for f32 explicitly.
    config: dict[str, Any] = {
        "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
        "PERFORMANCE_HINT": "LATENCY",  # one stream using every thread: a single caller
    }
    if threads is not None:
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = ov.Core().compile_model(network, "CPU", config)
    request = compiled.create_infer_request()

    def run(x: torch.Tensor) -> list[torch.Tensor]:
        results = request.infer({0: x.numpy()})
        return [torch.from_numpy(results[output].copy()) for output in compiled.outputs]  # the request reuses them

    return run
