"""Classify image files with a loaded model: the library side of ``mobilenet predict``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from mobilenet.data.images import preprocess
from mobilenet.inference.deploy import Deployed


@torch.inference_mode()
def classify(
    model: nn.Module | Deployed, images: list[str | Path], top: int = 5, batch_size: int = 32
) -> list[dict[str, Any]]:
    """Top-``top`` classes of each image, as ``{"image", "top": [{"index", "name", "prob"}]}``.

    ``model`` is a MobileNet or what :func:`~mobilenet.inference.deploy.deploy` made of one. An image that cannot
    be read gets ``{"image", "error"}`` instead, and the others still run.
    """
    if isinstance(model, nn.Module):
        model.eval()
    top = min(top, model.config.num_classes)
    names = model.class_names
    results: list[dict[str, Any]] = []
    for start in range(0, len(images), batch_size):
        paths = [str(p) for p in images[start : start + batch_size]]
        tensors, readable = [], []
        for path in paths:
            try:
                tensors.append(preprocess(path, model.preprocessing))
                readable.append(path)
            except (OSError, ValueError) as error:
                results.append({"image": path, "error": str(error)})
        if not tensors:
            continue
        probs = model(torch.stack(tensors)).softmax(dim=1)
        values, indices = probs.topk(top, dim=1)
        for path, row_values, row_indices in zip(readable, values.tolist(), indices.tolist(), strict=True):
            results.append(
                {
                    "image": path,
                    "top": [
                        {"index": i, "name": names[i] if names else str(i), "prob": p}
                        for p, i in zip(row_values, row_indices, strict=True)
                    ],
                }
            )
    order = {str(p): n for n, p in enumerate(images)}
    return sorted(results, key=lambda r: order[r["image"]])
