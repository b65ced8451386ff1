"""Models made ready for a check."""

from __future__ import annotations

import torch
from torch import nn


def trained_like(model: nn.Module) -> nn.Module:
    """Non-trivial BatchNorm statistics and affine terms, so that folding has something to fold."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.2)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.normal_(1, 0.2)
                module.bias.normal_(0, 0.2)
    return model.eval()
