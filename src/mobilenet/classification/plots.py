"""The confusion matrix of a classification evaluation, as PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mobilenet.utils.plotting import pyplot, save_figure


def plot_confusion(confusion: list[list[int]], classes: list[str], path: str | Path, title: str = "") -> None:
    """The confusion matrix, rows normalised; a last column counts predictions outside the classes."""
    plt = pyplot()
    matrix = np.asarray(confusion, dtype=float)
    if not matrix[:, -1].any():
        matrix = matrix[:, :-1]
    matrix /= np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.35 * len(classes) + 2)
    fig, axis = plt.subplots(figsize=(size + 1, size))
    image = axis.imshow(matrix, cmap="Blues", vmin=0, vmax=1)
    labels = [c[:18] for c in classes]
    axis.set_xticks(range(matrix.shape[1]), labels + ["other"] * (matrix.shape[1] - len(classes)), rotation=90)
    axis.set_yticks(range(len(classes)), labels)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    if title:
        axis.set_title(title)
    fig.colorbar(image, ax=axis, fraction=0.046)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
