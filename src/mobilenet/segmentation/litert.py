"""Google's runtime (``ai-edge-litert``) on a TFLite segmentation file, Coral's DeepLab: the reference to agree with.

Scored by the same code as our PyTorch model (it is a :data:`~mobilenet.segmentation.predict.Predictor`),
its figures check the protocol and the metrics independently of anything we wrote for the model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mobilenet.data.images import AnyImage
from mobilenet.runtimes.litert import LiteRTFile
from mobilenet.segmentation.predict import predict_mask


class LiteRTSegmenter:
    """A TFLite file with uint8 input (1, crop, crop, 3) of raw pixels, as Coral's DeepLab files take
    (scale 1/128, zero point 128), and class indices (1, crop, crop) or per-class scores (1, crop, crop, C) out.
    """

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        self.file = LiteRTFile(path, threads)
        if self.file.input["dtype"] != np.uint8 or len(self.file.outputs) != 1:
            raise ValueError(f"{path} takes {self.file.input['dtype'].__name__} input with {len(self.file.outputs)} "
                             "outputs: expected uint8 pixels (1, crop, crop, 3) and one output")  # fmt: skip
        self.crop = self.file.input_size

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        """Padded uint8 images (N, 3, crop, crop) -> class indices (N, crop, crop), one invoke per image."""
        (output,) = self.file(pixels.permute(0, 2, 3, 1).cpu().numpy())
        return (output.argmax(dim=-1) if output.dim() == 4 else output).long()

    def segment(self, image: AnyImage) -> torch.Tensor:
        """One image's (H, W) class mask, per DeepLab's protocol: padded, segmented, cropped back."""
        return predict_mask(self, image, self.crop)
