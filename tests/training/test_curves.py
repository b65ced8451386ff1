"""The learning curves put each column of metrics.csv on the axis of its kind: losses apart from scores."""

from __future__ import annotations

from mobilenet.training.curves import plot_curves, split_columns


def test_losses_and_scores_are_drawn_apart(tmp_path) -> None:
    classification = ["epoch", "lr", "train_loss", "train_top1", "val_loss", "val_top1", "val_top5", "skipped"]
    assert split_columns(classification) == (["train_loss", "val_loss"], ["train_top1", "val_top1", "val_top5"])
    detection = ["epoch", "train_loss", "train_classification", "train_localization", "val_map", "val_ap50"]
    assert split_columns(detection) == (["train_loss", "train_classification", "train_localization"],
                                        ["val_map", "val_ap50"])  # fmt: skip
    rows = [dict.fromkeys(detection, 0.5) | {"epoch": epoch, "train_loss": 9.0 - epoch} for epoch in (1, 2, 3)]
    plot_curves(rows, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
