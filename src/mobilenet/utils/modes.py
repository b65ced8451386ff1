"""A module in evaluation mode for a while, and in its own mode again afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from torch import nn


@contextmanager
def evaluating(model: Any) -> Iterator[None]:
    """``model`` in eval mode for the block, its own mode back after it; anything but a module (a deployed model)
    as it is. What every task's prediction and evaluation run in, so that scoring a model mid-training leaves it
    training."""
    if not isinstance(model, nn.Module):
        yield
        return
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)
