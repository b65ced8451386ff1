"""Classify images with a loaded model (the library side of ``mobilenet predict``), and decode classifier outputs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from mobilenet.data.imagenet import imagenet_names_for
from mobilenet.data.images import AnyImages, Stored, each_image, image_batch, model_input
from mobilenet.inference.deploy import Deployed
from mobilenet.utils.modes import evaluating


@torch.inference_mode()
def classify(
    model: nn.Module | Deployed, images: AnyImages, top: int = 5, batch_size: int = 32
) -> list[dict[str, Any]]:
    """The top classes of each image, in input order.

    An image that cannot be read (a missing or broken file, bytes that are no image, pixels of the wrong
    shape or type) gets ``{"image", "error"}`` instead, and the others still run. A 1000- or 1001-class
    model without class names is named with ImageNet's (see :func:`decode_predictions`).

    Args:
        model: a MobileNet, or what :func:`~mobilenet.inference.deploy.deploy` made of one; each image is
            preprocessed as its ``preprocessing`` says.
        images: one image or a list of them, of any kind :func:`~mobilenet.data.images.each_image` takes: file
            paths, encoded bytes, PIL images, uint8 RGB arrays (H, W, 3) and tensors (3, H, W) of any size, batches
            of those ((N, H, W, 3) arrays, (N, 3, H, W) tensors), and float tensors, taken as already preprocessed.
        top: how many classes per image.
        batch_size: images per forward pass.

    Returns:
        Per image ``{"image", "top": [{"index", "name", "prob"}, ...]}``, best first; ``"image"`` is the path of
        a file, else None.
    """
    items = each_image(images)
    results: list[dict[str, Any]] = [{} for _ in items]
    with evaluating(model):
        for start in range(0, len(items), batch_size):
            classify_batch(model, items, results, range(start, min(start + batch_size, len(items))), top)
    return results


def classify_images(model: nn.Module | Deployed, images: list[Any], top: int = 5) -> list[dict[str, Any]]:
    """Decoded images run as one batch (the server's batches): per image its top classes, as :func:`classify`."""
    return [{"top": result["top"]} for result in classify(model, images, top, batch_size=max(1, len(images)))]


def classify_batch(model: Any, items: list, results: list[dict[str, Any]], rows: range, top: int) -> None:
    """Fill ``results[row]`` for each of ``rows`` of ``items``: the top classes, or the error of an unreadable one."""
    tensors, read = [], []
    for row in rows:
        item = items[row]
        results[row]["image"] = str(item) if isinstance(item, str | Path | Stored) else None
        try:
            tensors.append(model_input(item, model.preprocessing))
            read.append(row)
        except (OSError, ValueError) as error:
            results[row]["error"] = str(error)
    if tensors:
        logits = model(torch.stack(tensors))
        for row, top_classes in zip(read, decode_predictions(logits, model.class_names, top), strict=True):
            results[row]["top"] = top_classes


def decode_predictions(
    outputs: torch.Tensor | np.ndarray, class_names: list[str] | None = None, top: int = 5
) -> list[list[dict[str, Any]]]:
    """The ``top`` classes of each row of a classifier's outputs: Keras's ``decode_predictions`` for any classifier.

    Rows that already are probabilities (non-negative, summing to 1) are kept; anything else is taken as logits
    and softmaxed. Without ``class_names``, a 1000-class output is named with ImageNet's classes as torchvision
    names them, a 1001-class one with "background" first (TensorFlow's layout); other sizes by their index.

    Args:
        outputs: (N, classes), or one row (classes,), of logits or probabilities.
        class_names: the name of each output.
        top: how many classes per row.

    Returns:
        Per row ``[{"index", "name", "prob"}, ...]``, best first.
    """
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    scores = torch.as_tensor(outputs).detach().float().cpu()
    scores = scores.unsqueeze(0) if scores.dim() == 1 else scores
    if scores.dim() != 2:
        raise ValueError(f"expected outputs of shape (N, classes) or (classes,), got {tuple(scores.shape)}")
    num_classes = scores.shape[1]
    names = class_names if class_names is not None else imagenet_names_for(num_classes)
    if names is not None and len(names) != num_classes:
        raise ValueError(f"{len(names)} class names for outputs of {num_classes} classes")
    is_probability = bool((scores >= 0).all()) and torch.allclose(scores.sum(dim=1), torch.ones(1), atol=1e-3)
    probs = scores if is_probability else scores.softmax(dim=1)
    values, indices = probs.topk(min(top, num_classes), dim=1)
    return [
        [
            {"index": i, "name": names[i] if names is not None else str(i), "prob": p}
            for p, i in zip(row_values, row_indices, strict=True)
        ]
        for row_values, row_indices in zip(values.tolist(), indices.tolist(), strict=True)
    ]


def describe(result: dict[str, Any]) -> str:
    """One :func:`classify` result for people: the image, then a line per class (probability, index, name)."""
    lines = [f"  {entry['prob']:6.1%}  {entry['index']:>5}  {entry['name']}" for entry in result["top"]]
    return "\n".join([str(result["image"]), *lines])


@torch.inference_mode()
def predict_logits(
    model: nn.Module, images: Sequence[str | Path], batch_size: int = 50, progress: bool = False
) -> torch.Tensor:
    """Logits of ``model`` for each image file, with the model's own preprocessing."""
    outputs = []
    with evaluating(model):
        for start in tqdm(range(0, len(images), batch_size), desc="scoring", unit="batch", disable=not progress):
            outputs.append(model(image_batch(list(images[start : start + batch_size]), model.preprocessing)))
    return torch.cat(outputs)
