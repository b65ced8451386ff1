"""ExecuTorch, PyTorch's own runtime for phones and microcontrollers: a model lowered to a program whose operators
run on the XNNPACK delegate (fp32, or int8 through PyTorch's PT2E quantization), and ExecuTorch's runtime on it.

A program takes one image (1, C, H, W) in float and gives float outputs, an int8 one too (its quantize and
dequantize steps are inside): what an app feeds it is what our float model takes. Programs have no free-form
metadata, so each string of mobilenet's metadata is a constant method of the program, named by its key
(``program.load_method("mobilenet.config").execute(())``): any ExecuTorch runtime reads them without our code.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn

from mobilenet.utils.optional import require

# A program's own metadata, beside the weights' keys: "fp32" or "int8", and its outputs' names (a JSON list).
KEY_PRECISION = "mobilenet.precision"
KEY_OUTPUTS = "mobilenet.outputs"
PROGRAM_IDENTIFIER = b"ET"  # bytes 4-5 of a .pte file (then its schema version: "ET12")
# Loggers that speak while ExecuTorch and torchao are imported or a program is lowered (torchao's CUDA kernels that
# a CPU build cannot load, torch's notices on pytree types): nothing a user can act on.
CHATTY_LOGGERS = ("torchao", "torch.utils._pytree", "torch._export", "executorch")


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """The runtime's C++ log lines kept off the terminal for a while: its CPU probe, when the thread pool or a method
    is first used, reports the Arm registers an x86 machine lacks. (Our own errors are raised, not logged.)"""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "wb") as null:
        os.dup2(null.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Warnings and the chatty loggers' messages below errors silenced for a while."""
    loggers = [logging.getLogger(name) for name in CHATTY_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def executorch_modules() -> SimpleNamespace:
    """ExecuTorch's lowering and runtime, and torchao's PT2E quantization, imported quietly; or one line saying how
    to install them."""
    require("executorch", "executorch")
    with quiet():
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
            XNNPACKQuantizer,
            get_symmetric_quantization_config,
        )
        from executorch.exir import to_edge_transform_and_lower
        from executorch.extension.pybindings import portable_lib
        from executorch.runtime import Runtime
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    return SimpleNamespace(
        XnnpackPartitioner=XnnpackPartitioner,
        XNNPACKQuantizer=XNNPACKQuantizer,
        quantization_config=get_symmetric_quantization_config,
        to_edge_transform_and_lower=to_edge_transform_and_lower,
        portable_lib=portable_lib,
        Runtime=Runtime,
        prepare_pt2e=prepare_pt2e,
        convert_pt2e=convert_pt2e,
    )


def lower(
    module: nn.Module, example: torch.Tensor, metadata: dict[str, str], calibration: torch.Tensor | None = None
) -> bytes:
    """``module`` (in eval mode, BatchNorm folded) as an ExecuTorch program for one image of ``example``'s size,
    its operators delegated to XNNPACK, ``metadata`` as constant methods.

    With ``calibration`` (preprocessed images), int8: XNNPACK's quantizer (symmetric int8 weights per channel,
    int8 activations) through PT2E, its ranges observed on the images one at a time, as the program runs them.
    """
    et = executorch_modules()
    image = example[:1]
    with quiet(), torch.no_grad():
        program = torch.export.export(module, (image,))
        precision = "fp32"
        if calibration is not None:
            quantizer = et.XNNPACKQuantizer().set_global(et.quantization_config(is_per_channel=True))
            observed = et.prepare_pt2e(program.module(), quantizer)
            for one in calibration.split(1):
                observed(one)
            program = torch.export.export(et.convert_pt2e(observed), (image,))
            precision = "int8"
        constants = {**metadata, KEY_PRECISION: precision}
        lowered = et.to_edge_transform_and_lower(
            program, partitioner=[et.XnnpackPartitioner()], constant_methods=constants
        )
        return lowered.to_executorch().buffer


class ExecuTorchProgram:
    """A .pte file (or its bytes) in ExecuTorch's runtime. Call it with a float (N, C, H, W) batch: one execution
    per image, the outputs concatenated. ``threads``: the size of ExecuTorch's thread pool, which is the process's
    (None: left as it is, one thread per core)."""

    def __init__(self, source: str | Path | bytes, threads: int | None = None) -> None:
        et = executorch_modules()
        if threads is not None:
            with native_stderr_silenced():  # the pool's first use probes the CPU, and a reset is logged
                if et.portable_lib._threadpool_get_thread_count() != threads:
                    et.portable_lib._unsafe_reset_threadpool(threads)
        content = source if isinstance(source, bytes) else Path(source).read_bytes()
        name = "the program" if isinstance(source, bytes) else str(source)
        # A program is a flatbuffer identified by "ET" and its schema's version: anything else is refused before the
        # runtime, which would log its own complaint, reads it.
        if content[4:6] != PROGRAM_IDENTIFIER:
            raise ValueError(f"{name} is not an ExecuTorch program (no ExecuTorch header): export it again")
        try:
            with native_stderr_silenced():
                self.program = et.Runtime.get().load_program(content)
                self.forward = self.program.load_method("forward")
        except RuntimeError as error:
            raise ValueError(f"{name} is not a complete ExecuTorch program ({error}): export it again") from None
        self.size_bytes = len(content)
        self.metadata = {
            method: self.program.load_method(method).execute(())[0]
            for method in sorted(self.program.method_names)
            if method.startswith("mobilenet.")
        }
        self.precision = self.metadata.get(KEY_PRECISION, "fp32")
        self.output_names: list[str] = json.loads(self.metadata.get(KEY_OUTPUTS, "[]"))
        self.input_shape = tuple(self.forward.metadata.input_tensor_meta(0).sizes())

    def __call__(self, x: torch.Tensor) -> list[torch.Tensor]:
        if tuple(x.shape[1:]) != self.input_shape[1:]:
            raise ValueError(f"this program takes images of shape {self.input_shape[1:]}, got {tuple(x.shape[1:])}")
        rows = [self.forward.execute((image.contiguous(),)) for image in x.float().split(1)]
        # Outputs of one image each are concatenated; a constant one (a detector's anchors) is given once.
        return [torch.cat(column) if column[0].shape[:1] == (1,) else column[0] for column in zip(*rows, strict=True)]
