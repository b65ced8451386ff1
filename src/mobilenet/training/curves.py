"""A run's learning curves as PNG: loss, and every other score the task records, per epoch."""

from __future__ import annotations

from pathlib import Path

from mobilenet.utils.plotting import pyplot, save_figure


def plot_curves(rows: list[dict], path: str | Path) -> None:
    """Training and validation loss on the left; the task's other ``train_``/``val_`` scores on the right."""
    plt = pyplot()
    epochs = [row["epoch"] for row in rows]
    scores = [key for key in rows[0] if key.startswith(("train_", "val_")) and not key.endswith("_loss")]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for key in ("train_loss", "val_loss"):
        if key in rows[0]:
            left.plot(epochs, [row[key] for row in rows], "o-", label=key.replace("_", " "))
    left.set_xlabel("epoch")
    left.set_ylabel("loss")
    left.legend()
    for key in scores:
        style = "o-" if key.startswith("val_") else "--"
        right.plot(epochs, [row[key] for row in rows], style, label=key.replace("_", " "))
    right.set_xlabel("epoch")
    right.set_ylabel("score")
    right.legend()
    fig.tight_layout()
    save_figure(fig, path)
