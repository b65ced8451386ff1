"""Google's SSD TFLite files in LiteRT, their own post-processing op included, and that op's NMS on our outputs.

:class:`LiteRTDetector` runs a file as its authors ship it: the detections of its ``TFLite_Detection_PostProcess``
op, and the tensors that op reads (box codes, class logits and scores, dequantized), kept by the interpreter's
``experimental_preserve_all_tensors``. What the op does with them, unless its options set ``use_regular_nms``,
is :func:`mobilenet.detection.postprocess.fast_nms`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from mobilenet.detection.tflite import read_ssd_tflite
from mobilenet.runtimes.litert import file_input
from mobilenet.utils.optional import require

Detections = tuple[Tensor, Tensor, Tensor]  # boxes [D, 4] xyxy normalized, scores [D], labels [D] (0-based)


@dataclass(frozen=True)
class LiteRTOutputs:
    """A batch through the file: its op's detections, padded to ``max_detections``, and the op's inputs."""

    boxes: Tensor  # [N, D, 4] xyxy normalized (the op's ymin, xmin, ymax, xmax reordered), unclipped
    scores: Tensor  # [N, D]
    labels: Tensor  # [N, D] int64, 0-based: the model's column - 1
    counts: Tensor  # [N] int64: how many of the D rows are detections
    box_codes: Tensor  # [N, A, 4] (ty, tx, th, tw), dequantized
    class_logits: Tensor  # [N, A, C], background at column 0
    class_scores: Tensor  # [N, A, C]: the sigmoid of the logits as the op reads it

    def detections(self) -> list[Detections]:
        """Per image (boxes, scores, labels) of its detections, as ``postprocess`` gives them."""
        return [
            (self.boxes[i, :count], self.scores[i, :count], self.labels[i, :count])
            for i, count in enumerate(self.counts.tolist())
        ]


class LiteRTDetector:
    """An SSD TFLite file in Google's runtime; call it with a preprocessed batch (N, C, H, W), one invoke per image."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        found = read_ssd_tflite(path)
        self.tensors = (found.box_codes, found.class_logits, found.class_scores)
        interpreter_type = require("ai_edge_litert.interpreter", "litert").Interpreter
        with warnings.catch_warnings():  # LiteRT warns that keeping every tensor is for debugging: it is, here
            warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors")
            self.interpreter = interpreter_type(
                model_path=str(path), num_threads=threads, experimental_preserve_all_tensors=True
            )
        self.interpreter.allocate_tensors()
        (self.input,) = self.interpreter.get_input_details()
        self.outputs = self.interpreter.get_output_details()  # boxes, classes, scores, count: the op's order
        self.quantization = {t["index"]: t["quantization"] for t in self.interpreter.get_tensor_details()}
        self.path, self.input_size = Path(path), found.input_size

    def dequantized(self, index: int) -> np.ndarray:
        values = self.interpreter.get_tensor(index)[0].astype(np.float32)
        scale, zero = self.quantization[index]
        return (values - zero) * scale if scale else values

    def __call__(self, batch: Tensor) -> LiteRTOutputs:
        if tuple(batch.shape[2:]) != (self.input_size, self.input_size):
            raise ValueError(f"{self.path} takes {self.input_size}x{self.input_size} images, got "
                             f"{batch.shape[-2]}x{batch.shape[-1]}: resize them to the file's input")  # fmt: skip
        rows = []
        for image in file_input(batch.permute(0, 2, 3, 1).numpy(), self.input):
            self.interpreter.set_tensor(self.input["index"], image[None])
            self.interpreter.invoke()
            outputs = [self.interpreter.get_tensor(output["index"])[0] for output in self.outputs]
            rows.append(outputs + [self.dequantized(index) for index in self.tensors])
        boxes, classes, scores, counts, codes, logits, class_scores = (
            torch.from_numpy(np.stack(column)) for column in zip(*rows, strict=True)
        )
        return LiteRTOutputs(
            boxes[..., [1, 0, 3, 2]], scores, classes.long(), counts.long(), codes, logits, class_scores
        )
