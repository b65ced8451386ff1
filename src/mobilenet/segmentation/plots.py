"""Per-class IoU of a segmentation evaluation, as PNG."""

from __future__ import annotations

from pathlib import Path

from mobilenet.segmentation.metrics import SegmentationEvaluation
from mobilenet.utils.plotting import pyplot, save_figure


def plot_class_iou(result: SegmentationEvaluation, path: str | Path, title: str = "") -> None:
    """Bars of per-class IoU, each class labelled with the number of images it is in, and the mIoU as a line."""
    plt = pyplot()
    rows = zip(result.classes, result.images, result.iou, strict=True)
    labels = [f"{name} ({images}){' n/a' if iou is None else ''}" for name, images, iou in rows][::-1]
    values = [100 * (iou or 0.0) for iou in result.iou][::-1]
    fig, axis = plt.subplots(figsize=(7, 0.28 * len(labels) + 1.5))
    axis.barh(labels, values, color="tab:blue")
    axis.axvline(100 * result.miou, color="black", linestyle="--", label=f"mIoU {100 * result.miou:.2f}%")
    axis.set_xlim(0, 100)
    axis.set_xlabel("IoU (%); n/a: class neither present nor predicted")
    axis.set_ylabel("class (images with it)")
    axis.set_title(title or f"{result.n} images")
    axis.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
