"""``deploy``: a model as the fastest inference callable this machine has, on PyTorch, ONNX Runtime, OpenVINO or
ExecuTorch.

Whatever runs underneath, the result maps a float (N, C, H, W) batch to logits (a classifier's (N, classes), a
Mobile DeepLabv3's (N, classes, H, W), or the feature maps of a features-only model) as float32 tensors; a
detector's, to its raw ``(box_codes, class_logits)``, with its anchors beside (:class:`DeployedDetector`).
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mobilenet.data.images import ImageSource, image_batch
from mobilenet.inference.backends import backend_for, check_precision, pick_backend
from mobilenet.inference.export import is_detector, model_preprocessing, onnx_proto
from mobilenet.inference.optimize import bf16_supported, fold_batchnorm, optimize
from mobilenet.nn.config import ModelConfig
from mobilenet.nn.preprocessing import Preprocessing
from mobilenet.runtimes.executorch import ExecuTorchProgram, lower
from mobilenet.runtimes.onnxruntime import onnx_outputs, onnx_precision, ort_runner, ort_session, read_onnx
from mobilenet.runtimes.openvino import Runner, ir_bytes, is_int8, openvino_runner, read_openvino, save_openvino
from mobilenet.runtimes.quantize import check_method, quantize_nncf, quantize_onnx
from mobilenet.utils.optional import require
from mobilenet.weights.format import METADATA_KEYS, ModelInfo, model_metadata, parse_metadata

Built = tuple[Runner, int]  # the runner and the size in bytes of the weights or file it runs from


class Deployed:
    """A model ready for inference on one backend. Call it with a float (N, C, H, W) batch.

    Not thread-safe (OpenVINO reuses one infer request): make one per thread. It carries the source
    model's ``config``, ``class_names`` and ``preprocessing``; ``size_bytes`` is the size of what it runs
    from (the ONNX file, the OpenVINO IR, or PyTorch's folded weights).
    """

    def __init__(
        self,
        config: ModelConfig,
        class_names: list[str] | None,
        preprocessing: Preprocessing,
        backend: str,
        precision: str,
        built: Built,
        method: str | None = None,
    ) -> None:
        self.config, self.class_names, self.preprocessing = config, class_names, preprocessing
        self.backend, self.precision, self.calibration_method = backend, precision, method
        self.run, self.size_bytes = built
        self.input_size = preprocessing.input_size

    def __call__(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        # ONNX Runtime and OpenVINO graphs are exported for one resolution (TF padding depends on it).
        expected = (self.config.in_chans, self.input_size, self.input_size)
        if x.dim() != 4 or (self.backend not in ("torch", "eager") and tuple(x.shape[1:]) != expected):
            raise ValueError(
                f"expected a float batch of shape (N, {', '.join(map(str, expected))}), got {tuple(x.shape)}"
            )
        outputs = self.run(x.detach().float().contiguous())
        return outputs[0] if len(outputs) == 1 else outputs

    def __repr__(self) -> str:
        method = f", calibration={self.calibration_method}" if self.calibration_method else ""
        return (
            f"Deployed({self.config.arch} width {self.config.width_mult:g}, {self.backend}, {self.precision}{method})"
        )


class DeployedDetector(Deployed):
    """A deployed SSD: it stands in for the SSD in :func:`mobilenet.detection.predict.run_detector`, ``detect`` and
    ``evaluate_detector``. Called with a batch, it gives the SSD's ``(box_codes, class_logits)``; ``anchors``
    are the SSD's at its input size, the only one its graph runs (NMS stays with the library, on any backend's
    outputs: see :mod:`mobilenet.inference.export`).
    """

    def __init__(self, *args: Any, anchors: torch.Tensor, kind: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.anchor_table, self.kind = anchors, kind

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        box_codes, class_logits = super().__call__(x)
        # On the batch's device, where the detections are made (PyTorch backends run on the model's).
        return box_codes.to(x.device), class_logits.to(x.device)

    def anchors(self, height: int, width: int) -> torch.Tensor:
        if (height, width) != (self.input_size, self.input_size):
            raise ValueError(
                f"this detector is deployed at {self.input_size}x{self.input_size}, not {height}x{width}: "
                "deploy a detector built at that input size"
            )
        return self.anchor_table


def deploy(
    model: nn.Module,
    backend: str = "auto",
    precision: str = "fp32",
    calibration: ImageSource | None = None,
    threads: int | None = None,
    calibration_method: str | None = None,
    calibration_size: int = 100,
) -> Deployed:
    """A model as the fastest inference callable this machine has for it: a float batch in, float32 outputs out.

    Args:
        model: any model of the package (a MobileNet, its features, a Mobile DeepLabv3, an SSD, a plugin's).
        backend: "torch" (:func:`~mobilenet.inference.optimize.optimize`), "onnxruntime", "openvino", "auto" (the
            fastest installed for the precision, see ``AUTO``) or "eager" (the model as it is).
        precision: "fp32", "bf16" (CPUs with native bf16) or "int8", which calibrates on ``calibration`` (ONNX
            Runtime's on an x86 CPU without VNNI: 7-bit weights where it multiplies matrices, see ``quantize_onnx``).
        calibration: int8's images: a folder of images, image files or a preprocessed tensor batch.
        threads: the backend's thread count (for PyTorch, process-wide); None leaves the backend's default.
        calibration_method: how int8's ranges are read (see ``mobilenet.runtimes.quantize.METHODS``; None: the
            backend's default).
        calibration_size: int8's calibration images, at most.

    Returns:
        A :class:`Deployed` (a detector's: a :class:`DeployedDetector`, its anchors beside).
    """
    if not hasattr(model, "config"):
        raise ValueError(f"expected a model of mobilenet's (one with a config), got {type(model).__name__}")
    check_precision(precision)
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
    backend = pick_backend(backend, precision)
    device = next(model.parameters()).device
    if device.type != "cpu" and backend not in ("torch", "eager"):
        model = copy.deepcopy(model).cpu()  # ONNX Runtime and OpenVINO run here on the CPU: export from a CPU copy
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
    elif backend == "executorch":
        built = _executorch(model, batch, threads)
    else:
        built = _openvino(model, precision, batch, method, threads)
    pre = model_preprocessing(model)
    source = (model.config, getattr(model, "class_names", None), pre, backend, precision, built, method)
    if is_detector(model):
        return DeployedDetector(*source, anchors=model.anchors(pre.input_size, pre.input_size), kind=model.kind)
    return Deployed(*source)


# Graphs that a runtime runs as they were saved: the suffix, and the runtime.
GRAPHS = {".onnx": "onnxruntime", ".xml": "openvino", ".pte": "executorch"}


def deploy_file(
    path: str | Path,
    load: Callable[[str | Path], nn.Module],
    config_type: type | None,
    backend: str = "auto",
    precision: str | None = None,
    calibration: ImageSource | None = None,
    threads: int | None = None,
    images: int | None = None,
) -> Deployed:
    """A model file ready for inference: weights, read by ``load``, through :func:`deploy` (fp32 unless
    ``precision`` says), or a graph that mobilenet wrote (an ONNX file of ``mobilenet export``, the OpenVINO IR
    of a quantization-aware training run), which runs in its runtime as it was saved, its config read as
    ``config_type`` (None: a name ``load`` takes, never a graph).

    ``images``, the number of images it will run on, lets ``backend="auto"`` skip an export that would
    not pay off (see :func:`~mobilenet.inference.backends.backend_for`).
    """
    ours = Path(path).suffix in GRAPHS and (Path(path).suffix == ".xml" or graph_kind(Path(path)) is not None)
    if not ours or config_type is None:  # weights, or anyone's ONNX graph, whose weights ``load`` recovers
        if images is not None:
            backend = backend_for(images, backend, precision or "fp32")
        return deploy(load(path), backend, precision or "fp32", calibration, threads)
    return load_graph(Path(path), config_type, backend, precision, calibration, threads)


def graph_info(path: Path, threads: int | None = None) -> tuple[Any, ModelInfo]:
    """A saved graph (ONNX, OpenVINO IR or ExecuTorch program), read by its runtime's reader (a program loaded, on
    ``threads``), and what its metadata says of the model."""
    if path.suffix == ".xml":
        network, metadata = read_openvino(path, METADATA_KEYS)
    elif path.suffix == ".pte":
        network = ExecuTorchProgram(path, threads)
        metadata = network.metadata
    else:
        network, metadata = read_onnx(path, METADATA_KEYS)
    return network, parse_metadata(metadata, str(path))


def graph_kind(path: Path) -> str | None:
    """The kind of model a graph of ours holds, from its metadata (None: not ours)."""
    return graph_info(path)[1].kind


def load_graph(
    path: Path,
    config_type: type,
    backend: str = "auto",
    precision: str | None = None,
    calibration: ImageSource | None = None,
    threads: int | None = None,
) -> Deployed:
    """A graph that mobilenet wrote (its metadata holds a config of ``config_type``), run as it was saved (fp32, or
    int8 when it holds quantization) by its runtime: ONNX Runtime for .onnx, OpenVINO for .xml, ExecuTorch for .pte."""
    runtime = GRAPHS[path.suffix]
    if backend not in ("auto", runtime) or calibration is not None:
        raise ValueError(f"{path} runs in {runtime} as it was saved: leave out the backend and calibration")
    network, info = graph_info(path, threads)
    if info.config_fields is None:
        raise ValueError(f"{path} carries no mobilenet metadata (config, classes): run it with {runtime} directly")
    known = {f.name for f in fields(config_type)}
    config = config_type(**{key: value for key, value in info.config_fields.items() if key in known})
    if runtime == "openvino":
        names = [min(output.get_names(), default="") for output in network.outputs]  # an output may have none
        saved = "int8" if is_int8(network) else "fp32"
    elif runtime == "executorch":
        saved, names = network.precision, network.output_names
    else:
        saved, names = onnx_precision(network), onnx_outputs(network)
    if precision not in (None, saved):
        raise ValueError(f"{path} is an {saved} graph and runs as {saved}: leave out the precision")
    if "classes" in names:
        raise ValueError(f"{path} gives class indices (exported with --argmax): export it without --argmax to run it")
    if runtime == "openvino":
        runner, size = openvino_runner(network, saved, threads), ir_bytes(path)
    elif runtime == "executorch":
        runner, size = network, network.size_bytes
    else:
        runner, size = ort_runner(ort_session(path.read_bytes(), threads)), path.stat().st_size
    preprocessing = info.preprocessing or Preprocessing(input_size=config.input_size)
    source = (config, info.class_names, preprocessing, runtime, saved, (runner, size))
    if names[-1:] != ["anchors"]:
        if "box_codes" in names:
            raise ValueError(f"{path} holds a detector without its anchors: export it with `mobilenet export`")
        return Deployed(*source)
    # A detector's graph gives its anchors as a constant last output: read once, then left out of each call.
    size_in = preprocessing.input_size
    anchors = runner(torch.zeros(1, config.in_chans, size_in, size_in))[-1]
    deployed = DeployedDetector(*source, anchors=anchors, kind=info.kind)
    deployed.run = lambda x: runner(x)[:-1]
    return deployed


def weight_bytes(module: nn.Module) -> int:
    """The size of a module's parameters and buffers in memory."""
    return sum(t.numel() * t.element_size() for t in module.state_dict().values())


def _in_memory(module: nn.Module) -> Built:
    """A PyTorch module as a runner: a list of outputs, whether it gives logits or feature maps."""

    device = next(module.parameters()).device

    @torch.inference_mode()
    def run(x: torch.Tensor) -> list[torch.Tensor]:
        outputs = module(x.to(device))
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
    with tempfile.TemporaryDirectory() as directory:
        path = _onnx_file(model, Path(directory))
        if batch is not None:
            quantize_onnx(path, path.with_name("int8.onnx"), batch, method)
            path = path.with_name("int8.onnx")
        onnx_bytes = path.read_bytes()
    return ort_runner(ort_session(onnx_bytes, threads)), len(onnx_bytes)


def _executorch(model: nn.Module, batch: torch.Tensor | None, threads: int | None) -> Built:
    """The folded model as an ExecuTorch program on XNNPACK (int8 when calibrated on ``batch``), run in memory."""
    size = model_preprocessing(model).input_size
    example = torch.zeros(1, model.config.in_chans, size, size)
    program = ExecuTorchProgram(lower(fold_batchnorm(model), example, model_metadata(model), batch), threads)
    return program, program.size_bytes


def _openvino(
    model: nn.Module, precision: str, batch: torch.Tensor | None, method: str | None, threads: int | None
) -> Built:
    ov = require("openvino", "openvino")
    with tempfile.TemporaryDirectory() as directory:
        # convert_model (not read_model): its constant folding gives NNCF the depthwise weights as constants.
        network = ov.convert_model(_onnx_file(model, Path(directory)))
        if batch is not None:
            network = quantize_nncf(network, batch, method)
        ir = save_openvino(network, Path(directory) / "model.xml", model_metadata(model))
        return openvino_runner(network, precision, threads), ir_bytes(ir)
