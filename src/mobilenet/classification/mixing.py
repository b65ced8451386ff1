"""Mixup and cutmix: soft targets from pairs of images, drawn from the step's own generator."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from mobilenet.classification.config import ClassificationSettings


def mix_batch(
    settings: ClassificationSettings,
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Soft targets, with mixup or cutmix applied when configured (chosen at random if both are)."""
    targets = nn.functional.one_hot(labels, num_classes).float()
    if not (settings.mixup or settings.cutmix):
        return images, targets
    rng = np.random.default_rng(int(torch.randint(2**31, (1,), generator=generator)))
    use_cutmix = settings.cutmix > 0 and (settings.mixup == 0 or rng.random() < 0.5)
    alpha = settings.cutmix if use_cutmix else settings.mixup
    lam = float(rng.beta(alpha, alpha))
    order = torch.randperm(len(labels), generator=generator).to(labels.device)
    if use_cutmix:  # paste a box of area (1 - lam) from the partner image; lam follows the real area
        height, width = images.shape[-2:]
        cut_h, cut_w = int(height * math.sqrt(1 - lam)), int(width * math.sqrt(1 - lam))
        cy, cx = int(rng.integers(height)), int(rng.integers(width))
        top, bottom = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, height)
        left, right = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, width)
        images = images.clone()
        images[..., top:bottom, left:right] = images[order][..., top:bottom, left:right]
        lam = 1 - (bottom - top) * (right - left) / (height * width)
    else:
        images = lam * images + (1 - lam) * images[order]
    return images, lam * targets + (1 - lam) * targets[order]
