"""Google's SSD TFLite files in LiteRT, their own post-processing op included, and that op's NMS on our outputs.

:class:`LiteRTDetector` runs a file as its authors ship it: the detections of its ``TFLite_Detection_PostProcess``
op, and the tensors that op reads (box codes, class logits and scores, dequantized), kept by the interpreter's
``experimental_preserve_all_tensors``. What the op does with them, unless its options set ``use_regular_nms``,
is :func:`mobilenet.detection.postprocess.fast_nms`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from mobilenet.detection.tflite import read_ssd_tflite
from mobilenet.runtimes.litert import LiteRTFile

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
        self.file = LiteRTFile(path, threads, kept=(found.box_codes, found.class_logits, found.class_scores))
        self.input_size = self.file.input_size

    def __call__(self, batch: Tensor) -> LiteRTOutputs:
        # The op's outputs (boxes, classes, scores, count), then its inputs, dequantized.
        boxes, classes, scores, counts, codes, logits, class_scores = self.file(self.file.feed(batch))
        return LiteRTOutputs(
            boxes[..., [1, 0, 3, 2]], scores, classes.long(), counts.long(), codes, logits, class_scores
        )
