"""Precision-recall curves of a detection evaluation, as PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mobilenet.detection.metrics import DetectionEvaluation
from mobilenet.utils.plotting import pyplot, save_figure


def plot_precision_recall(evaluation: DetectionEvaluation, path: str | Path, title: str = "") -> None:
    """Precision-recall curves at IoU 0.5 (COCO's interpolated precision at 101 recall points, all areas): one per
    class that the ground truth holds, labelled with its AP50 when there are few, and their mean in black."""
    plt = pyplot()
    recall = np.linspace(0, 1, evaluation.precision.shape[1])
    curves = evaluation.precision[0, :, :, 0, -1]  # IoU 0.5, all areas, max detections: [recall, class]
    present = [label for label in range(curves.shape[1]) if (curves[:, label] > -1).all()]
    fig, axis = plt.subplots(figsize=(7, 5))
    labelled = len(present) <= 20  # a legend of COCO's 80 classes would hide the plot
    for index, label in enumerate(present):
        if labelled:
            name, style = f"{evaluation.classes[label]} ({curves[:, label].mean():.3f})", {"alpha": 0.6}
        else:
            name, style = f"each of {len(present)} classes" if index == 0 else None, {"alpha": 0.3, "color": "gray"}
        axis.plot(recall, curves[:, label], linewidth=1, label=name, **style)
    if present:
        mean = curves[:, present].mean(axis=1)
        axis.plot(recall, mean, color="black", linewidth=2.5, label=f"all classes (AP50 {evaluation.ap50:.3f})")
        axis.legend(loc="lower left", fontsize=7)
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1.02)
    axis.set_xlabel("recall")
    axis.set_ylabel("precision (interpolated)")
    axis.set_title(title or f"{evaluation.n} images, IoU 0.5, at most {evaluation.max_detections} detections per image")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
