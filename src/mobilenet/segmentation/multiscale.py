"""Multi-scale and flipped inference, as DeepLab evaluates its best rows (the paper's Table 7: "MF", OS 8).

The padded image is resized to each scale of its size (DeepLab's ``(size - 1) * scale + 1``, bilinear with corners
aligned), run, and run mirrored left to right with ``flip``; each output's logits are resized back, turned into
class probabilities (softmax) and averaged. The result is a :data:`~mobilenet.segmentation.predict.Predictor` of
probabilities, scored and cropped back as any other.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from mobilenet.segmentation.config import DEEPLAB_SCALES
from mobilenet.segmentation.predict import Predictor


def scaled_size(size: int, scale: float) -> int:
    """DeepLab's ``scale_dimension``: a side of ``size`` pixels at ``scale``, corners kept (513 at 0.5: 257)."""
    return int((size - 1) * scale + 1)


def multi_scale(predict: Predictor, scales: Sequence[float] = DEEPLAB_SCALES, flip: bool = True) -> Predictor:
    """``predict`` (which must give logits and take any input size) run at each of ``scales`` and, with ``flip``,
    mirrored too: the mean of the class probabilities, at the input's size."""
    if not scales:
        raise ValueError("multi-scale inference needs at least one scale")

    def run(pixels: torch.Tensor) -> torch.Tensor:
        size = tuple(pixels.shape[-2:])
        total = torch.zeros(())
        for scale in scales:
            scaled = tuple(scaled_size(side, scale) for side in size)
            resized = pixels if scaled == size else resize(pixels.float(), scaled)
            for mirrored in (False, True) if flip else (False,):
                logits = predict(resized.flip(-1) if mirrored else resized)
                if not logits.is_floating_point() or logits.dim() != 4:
                    raise ValueError("multi-scale inference averages class probabilities: the model must give logits")
                logits = logits.flip(-1) if mirrored else logits
                probabilities = (logits if scaled == size else resize(logits, size)).softmax(dim=1)
                total = total + probabilities
        return total / (len(scales) * (2 if flip else 1))

    return run


def inference(predict: Predictor, model: object, scales: Sequence[float] | None, flip: bool) -> Predictor:
    """``predict`` as it is, or multi-scale and flipped (``scales`` None: 1 alone). A model deployed to a graph of
    one input size takes no other scale."""
    if not scales and not flip:
        return predict
    scales = tuple(scales or (1.0,))
    if scales != (1.0,) and getattr(model, "backend", "torch") not in ("torch", "eager"):
        raise ValueError("--scales other than 1 run the model at other sizes, which a graph exported for one size "
                         "cannot: add --backend torch")  # fmt: skip
    return multi_scale(predict, scales, flip)


def resize(values: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    return F.interpolate(values, size=size, mode="bilinear", align_corners=True)
