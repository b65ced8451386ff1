"""Google's runtime (``ai-edge-litert``) on a TFLite segmentation file, Coral's DeepLab: the reference to agree with.

Scored by the same code as our PyTorch model (it is a :data:`~mobilenet.segmentation.evaluate.Predictor`),
its figures check the protocol and the metrics independently of anything we wrote for the model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mobilenet.data.images import AnyImage
from mobilenet.segmentation.evaluate import predict_mask


class LiteRTSegmenter:
    """A TFLite file with uint8 input (1, crop, crop, 3) of raw pixels, as Coral's DeepLab files take
    (scale 1/128, zero point 128), and class indices (1, crop, crop) or per-class scores (1, crop, crop, C) out.
    """

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise ImportError("running .tflite files needs Google's runtime: pip install ai-edge-litert") from None
        self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self.interpreter.allocate_tensors()
        (self.input,), (self.output,) = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        shape = tuple(self.input["shape"])
        if self.input["dtype"] != np.uint8 or len(shape) != 4 or shape[1] != shape[2]:
            raise ValueError(f"{path} takes {self.input['dtype'].__name__} {shape}: expected uint8 (1, crop, crop, 3)")
        self.crop = int(shape[1])

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        """Padded uint8 images (N, 3, crop, crop) -> class indices (N, crop, crop), one invoke per image."""
        masks = []
        for image in pixels.permute(0, 2, 3, 1).cpu().numpy():
            self.interpreter.set_tensor(self.input["index"], image[None])
            self.interpreter.invoke()
            output = self.interpreter.get_tensor(self.output["index"])[0]
            masks.append(output.argmax(axis=-1) if output.ndim == 3 else output)
        return torch.from_numpy(np.stack(masks).astype(np.int64))

    def segment(self, image: AnyImage) -> torch.Tensor:
        """One image's (H, W) class mask, per DeepLab's protocol: padded, segmented, cropped back."""
        return predict_mask(self, image, self.crop)
