"""Quantization-aware training: NNCF's int8 fake-quantization, trained by the ordinary loop through its hook.

:func:`prepare_qat` calibrates on training images as the int8 post-training path does (int8 weights
per output channel, uint8 activations, NNCF's placement for OpenVINO) and returns the model with
fake-quantize hooks whose ranges are parameters that learn with the weights; the loop itself does
not change. A run keeps three things of it: the quantizer placement (``quantizers.json``, written once
and re-applied on resume before a checkpoint's tensors load), float weights without the quantizers
(best/last.safetensors, loadable anywhere), and at the end the int8 OpenVINO IR that training simulated.
:class:`QuantizationAware` is all of that as a :class:`~mobilenet.training.hooks.Hook`, for tasks that offer
calibration images (:class:`~mobilenet.training.task.Calibrated`).
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from mobilenet.runtimes.openvino import Runner, openvino_runner, read_openvino, save_openvino
from mobilenet.runtimes.quantize import quantize_nncf, require_nncf
from mobilenet.training.checkpoint import POINTER
from mobilenet.training.config import TrainConfig
from mobilenet.training.hooks import Extra, Hook
from mobilenet.training.task import Calibrated, Task, TrainingData
from mobilenet.utils.files import atomic_text
from mobilenet.utils.optional import require
from mobilenet.weights.format import model_metadata

QUANTIZER_PREFIX = "__nncf"  # NNCF's hooks, in state-dict keys and parameter names
PLACEMENT = "quantizers.json"
INT8_IR = "int8.xml"
CALIBRATION_IMAGES = 300  # NNCF's default subset size


def is_quantizer(name: str) -> bool:
    """Whether a parameter or state-dict key belongs to a fake-quantizer rather than to the network."""
    return name.startswith(QUANTIZER_PREFIX)


def check_qat(compile: bool, has_weights: bool) -> None:
    """Refuse, before anything is read or written, what quantization-aware training cannot do with a config."""
    if compile:
        raise ValueError("qat does not combine with compile (NNCF's hooks): set --compile false")
    if not has_weights:  # in eval mode an untrained network outputs ~0: nothing to calibrate
        raise ValueError("qat fine-tunes trained weights: pass --weights (a float run's best.safetensors, say)")


def prepare_qat(model: nn.Module, calibration: torch.Tensor, run_dir: Path | None = None) -> nn.Module:
    """A copy of ``model`` with int8 fake-quantizers calibrated on ``calibration``, ready to train.

    With ``run_dir`` the placement is written there, for :func:`restore_qat` to resume from.
    """
    nncf_torch = require_nncf("nncf.torch")
    quantized = quantize_nncf(model.eval(), calibration)
    if run_dir is not None:
        atomic_text(run_dir / PLACEMENT, json.dumps(nncf_torch.get_config(quantized)))
    return quantized


def restore_qat(model: nn.Module, run_dir: Path) -> nn.Module:
    """``model`` with the quantizers of the run in ``run_dir`` placed (their values load with its checkpoint)."""
    path = run_dir / PLACEMENT
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} trains with qat but has no {PLACEMENT}: it cannot be resumed")
    return require_nncf("nncf.torch").load_from_config(model, json.loads(path.read_text()))


def float_model(model: nn.Module) -> nn.Module:
    """``model`` without its quantizers: the same network with the same weights (``model`` if it has none)."""
    state = model.state_dict()
    if not any(is_quantizer(key) for key in state):
        return model
    plain = type(model)(model.config)
    plain.load_state_dict({key: value for key, value in state.items() if not is_quantizer(key)})
    plain.class_names, plain.preprocessing = model.class_names, model.preprocessing
    return plain.to(next(model.parameters()).device)


def export_int8(model: nn.Module, path: Path) -> Path:
    """Write a fake-quantized model as the int8 OpenVINO IR it simulates: ``path`` (.xml) and its .bin."""
    ov = require("openvino", "openvino")
    size = model.preprocessing.input_size
    example = torch.randn(1, model.config.in_chans, size, size, device=next(model.parameters()).device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # the model's input checks, fixed by tracing
        network = ov.convert_model(model.eval(), example_input=example)
    with tempfile.TemporaryDirectory(dir=path.parent) as directory:  # the pair appears whole, or not at all
        written = save_openvino(network, Path(directory) / path.name, model_metadata(model))
        os.replace(written.with_suffix(".bin"), path.with_suffix(".bin"))
        os.replace(written, path)
    return path


def int8_runner(path: Path) -> Runner:
    """The int8 IR at ``path``, compiled for this CPU: a callable from a float batch to its outputs."""
    network, _ = read_openvino(path, ())
    return openvino_runner(network, "int8")


class QuantizationAware(Hook):
    """Quantization-aware training as a capability of the loop (``--qat``): see the module's docstring."""

    def check(self, config: TrainConfig, task: Task, resuming: bool) -> None:
        check_qat(config.compile, config.weights is not None or resuming)
        if not isinstance(task, Calibrated):
            raise ValueError(f"qat calibrates on the task's images, which the {task.name} task does not offer: "
                             "train it without --qat")  # fmt: skip

    def prepare(
        self, model: nn.Module, task: Task, data: TrainingData, run_dir: Path | None, resume: Path | None
    ) -> nn.Module:
        if resume is not None and (resume / POINTER).exists():
            return restore_qat(model, resume)
        # Every process calibrates on the same images; DDP then starts all from rank 0's values anyway.
        return prepare_qat(model, task.calibration_batch(data, CALIBRATION_IMAGES), run_dir)  # type: ignore[attr-defined]

    def no_weight_decay(self, name: str) -> bool:
        return is_quantizer(name)

    def plain(self, model: nn.Module) -> nn.Module:
        return float_model(model)

    def finish(
        self, model: nn.Module, task: Task, data: TrainingData, run_dir: Path, rank: int, micro_batch: int,
        workers: int,
    ) -> dict[str, Extra]:  # fmt: skip
        """Write the int8 IR (rank 0), then score it on the validation set (each process its share)."""
        path = run_dir / INT8_IR
        if rank == 0:
            export_int8(model, path)
        if dist.is_initialized():
            dist.barrier()
        runner = int8_runner(path)
        evaluation = task.evaluate(lambda x: runner(x)[0], data.val, micro_batch, workers, torch.device("cpu"))
        return {"int8": Extra(evaluation, {"ir": INT8_IR}, f"int8 (OpenVINO IR {path})")}
