"""PNG figures: per-layer cost, learning curves, confusion matrices."""

from __future__ import annotations

from pathlib import Path

from mobilenet.complexity import Profile


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    return plt


def plot_profile(result: Profile, path: str | Path) -> None:
    """Bars of multiply-adds and parameters per layer."""
    plt = _pyplot()
    layers = [layer for layer in result.layers if layer.operator != "avgpool"]
    names = [layer.name.replace("features.", "") for layer in layers]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    top.bar(names, [layer.madds / 1e6 for layer in layers], color="tab:blue")
    top.set_ylabel("MAdds (M)")
    top.set_title(
        f"{result.model} width {result.width_mult:g} @ {result.resolution}: "
        f"{result.madds / 1e6:.1f}M MAdds, {result.params / 1e6:.2f}M parameters"
    )
    bottom.bar(names, [layer.params / 1e6 for layer in layers], color="tab:orange")
    bottom.set_ylabel("parameters (M)")
    bottom.set_xlabel("layer (features index)")
    bottom.tick_params(axis="x", rotation=90)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_curves(rows: list[dict], path: str | Path) -> None:
    """Loss and accuracy per epoch, training against validation."""
    plt = _pyplot()
    epochs = [row["epoch"] for row in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(epochs, [row["train_loss"] for row in rows], "o-", label="train")
    left.plot(epochs, [row["val_loss"] for row in rows], "o-", label="validation")
    left.set_xlabel("epoch")
    left.set_ylabel("loss")
    left.legend()
    right.plot(epochs, [row["train_top1"] for row in rows], "o-", label="train top-1")
    right.plot(epochs, [row["val_top1"] for row in rows], "o-", label="validation top-1")
    right.plot(epochs, [row["val_top5"] for row in rows], "--", label="validation top-5")
    right.set_xlabel("epoch")
    right.set_ylabel("accuracy")
    right.set_ylim(0, 1)
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_confusion(confusion: list[list[int]], classes: list[str], path: str | Path) -> None:
    """The confusion matrix, rows normalised; a last column counts predictions outside the classes."""
    import numpy as np

    plt = _pyplot()
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
    fig.colorbar(image, ax=axis, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
