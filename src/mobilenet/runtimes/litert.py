"""LiteRT, Google's TFLite runtime: interpreters on files, images fed as a file takes them, and a file as its authors
ship it, the reference ``bench`` times ours against.

Google's files (Coral's uint8 classifiers and DeepLab) take batch-1 NHWC pixels in their own integer type; the
batch is converted once by :meth:`LiteRTFile.feed`, outside the timing, as our paths get their float batch ready.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mobilenet.utils.optional import require

# TF Lite's SSD post-processing: a custom op of Google's runtime (box decoding and NMS), at the end of detect.tflite.
POSTPROCESS_OP = "TFLite_Detection_PostProcess"


def installed() -> bool:
    """Whether Google's runtime (``ai-edge-litert``) is installed here."""
    return importlib.util.find_spec("ai_edge_litert") is not None


def interpreter(
    path: str | Path | None = None, content: bytes | None = None, threads: int | None = None, keep_all: bool = False
) -> Any:
    """Google's interpreter on a TFLite file (or its bytes), its tensors allocated; ``keep_all`` keeps every tensor
    readable after an invoke (for debugging, and for reading a file's inner tensors)."""
    interpreter_type = require("ai_edge_litert.interpreter", "litert").Interpreter
    with warnings.catch_warnings():  # LiteRT warns that keeping every tensor is for debugging: it is, here
        warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors")
        found = interpreter_type(
            model_path=None if path is None else str(path), model_content=content, num_threads=threads,
            experimental_preserve_all_tensors=keep_all,
        )  # fmt: skip
    found.allocate_tensors()
    return found


def outputs(interpreter: Any, images: np.ndarray) -> np.ndarray:
    """The dequantized output of an allocated TFLite model of one input and one output, for preprocessed
    (N, H, W, C) images, one invoke each: the one way images are fed to a file (see :func:`file_input`), so that
    LiteRT sees what our float model sees up to that rounding."""
    (source,), (target,) = interpreter.get_input_details(), interpreter.get_output_details()
    out_scale, out_zero = target["quantization"]
    rows = []
    for image in file_input(images, source):
        interpreter.set_tensor(source["index"], image[None])
        interpreter.invoke()
        output = interpreter.get_tensor(target["index"])[0].astype(np.float32)
        rows.append((output - out_zero) * out_scale if out_scale else output)
    return np.stack(rows)


def file_input(images: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    """Preprocessed float images (N, H, W, C) as a file's input of ``detail`` (the interpreter's input details)
    takes them: as they are for a float input, else quantized with its own scale and zero point."""
    dtype = detail["dtype"]
    if dtype == np.float32:
        return np.ascontiguousarray(images, dtype=np.float32)
    (scale, zero), bounds = detail["quantization"], np.iinfo(dtype)
    return np.clip(np.round(images / scale + zero), bounds.min, bounds.max).astype(dtype)


class LiteRTFile:
    """A TFLite file in Google's runtime: call it with :meth:`feed`'s batch; one invoke per image.

    ``kept``: indices of inner tensors to return too, dequantized, after the file's outputs (the inputs of an SSD
    file's detection op, say); the interpreter then keeps every tensor instead of reusing their memory.
    """

    def __init__(self, path: str | Path, threads: int | None = None, kept: Sequence[int] = ()) -> None:
        self.interpreter = interpreter(path, threads=threads, keep_all=bool(kept))
        self.kept = tuple(kept)
        details = self.interpreter.get_tensor_details() if kept else []
        self.quantization = {t["index"]: t["quantization"] for t in details}
        (self.input,), self.outputs = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        shape = tuple(int(n) for n in self.input["shape"])
        if len(shape) != 4 or shape[0] != 1 or shape[1] != shape[2]:
            raise ValueError(f"{path} takes input {shape}: expected one square NHWC image (1, size, size, channels)")
        self.path, self.input_size, self.size_bytes = Path(path), shape[1], Path(path).stat().st_size

    def feed(self, x: torch.Tensor) -> np.ndarray:
        """A preprocessed float batch (N, C, H, W) as the file takes it: NHWC, quantized with its scale and zero
        point when its input is an integer type (raw pixels for Coral's files)."""
        if tuple(x.shape[2:]) != (self.input_size, self.input_size):
            raise ValueError(f"{self.path} takes {self.input_size}x{self.input_size} images, got "
                             f"{x.shape[-2]}x{x.shape[-1]}: run the model at the file's input size")  # fmt: skip
        return file_input(x.permute(0, 2, 3, 1).numpy(), self.input)

    def __call__(self, images: np.ndarray) -> list[torch.Tensor]:
        """The file's outputs for each image of :meth:`feed`'s batch, concatenated, as the file gives them (then the
        ``kept`` tensors)."""
        rows = []
        for image in images:
            self.interpreter.set_tensor(self.input["index"], image[None])
            self.interpreter.invoke()
            outputs = [self.interpreter.get_tensor(output["index"]) for output in self.outputs]
            rows.append(outputs + [self.dequantized(index) for index in self.kept])
        return [torch.from_numpy(np.concatenate(column)) for column in zip(*rows, strict=True)]

    def dequantized(self, index: int) -> np.ndarray:
        """Tensor ``index`` after the last invoke, in float: its integer values through its scale and zero point."""
        values = self.interpreter.get_tensor(index).astype(np.float32)
        scale, zero = self.quantization[index]
        return (values - zero) * scale if scale else values
