"""Scoring a model on labelled image files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm import tqdm

from mobilenet.model import MobileNet
from mobilenet.preprocess import preprocess


@torch.inference_mode()
def predict_logits(
    model: MobileNet, images: Sequence[str | Path], batch_size: int = 50, progress: bool = False
) -> torch.Tensor:
    """Logits of ``model`` for each image file, with the model's own preprocessing."""
    model.eval()
    outputs = []
    batches = range(0, len(images), batch_size)
    for start in tqdm(batches, desc="scoring", unit="batch", disable=not progress):
        batch = torch.stack([preprocess(path, model.preprocessing) for path in images[start : start + batch_size]])
        outputs.append(model(batch))
    return torch.cat(outputs)


def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor, k: int = 1) -> float:
    """The fraction of rows whose label is among the ``k`` highest logits."""
    top = logits.topk(min(k, logits.shape[1]), dim=1).indices
    return (top == labels[:, None]).any(dim=1).float().mean().item()
