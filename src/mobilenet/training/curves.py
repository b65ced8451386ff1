"""A run's learning curves as PNG: losses on the left, scores on the right, per epoch."""

from __future__ import annotations

from pathlib import Path

from mobilenet.utils.plotting import pyplot, save_figure


def split_columns(columns: list[str]) -> tuple[list[str], list[str]]:
    """The loss columns and the score columns of metrics.csv. A training value is a score when validation
    reports the same one (``train_top1`` beside ``val_top1``); otherwise it is a part of the loss (a detector's
    ``train_localization``), drawn on the loss's axis, not squashed against a score's."""
    measured = [key for key in columns if key.startswith(("train_", "val_"))]
    scored = {key.removeprefix("val_") for key in measured if key.startswith("val_") and key != "val_loss"}
    scores = [key for key in measured if key.split("_", 1)[1] in scored]
    return [key for key in measured if key not in scores], scores


def plot_curves(rows: list[dict], path: str | Path) -> None:
    """Training and validation loss (and the loss's parts) on the left; the task's scores on the right."""
    plt = pyplot()
    epochs = [row["epoch"] for row in rows]
    losses, scores = split_columns(list(rows[0]))
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for axis, keys, label in ((left, losses, "loss"), (right, scores, "score")):
        for key in keys:
            style = "o-" if key in ("train_loss", "val_loss") or key.startswith("val_") else "--"
            axis.plot(epochs, [row[key] for row in rows], style, markersize=3, label=key.replace("_", " "))
        axis.set_xlabel("epoch")
        axis.set_ylabel(label)
        if keys:
            axis.legend()
    right.set_ylim(0, max(1.0, *(row[key] for row in rows for key in scores)) if scores else 1.0)
    fig.tight_layout()
    save_figure(fig, path)
