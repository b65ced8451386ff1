"""Another framework's MobileNet as a chain of convolutions in execution order, loaded into ours.

TFLite files, Keras weights and ONNX graphs name their layers their own way (or not at all), but every MobileNet is
the same chain: each convolution followed by its BatchNorm (or with it folded into a bias). The architecture and
width are recognised by matching the chain's weight shapes against the models we build, and each convolution is
loaded, in order, into our conv + BatchNorm pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from mobilenet.nn.config import ModelConfig
from mobilenet.nn.model import MobileNet
from mobilenet.nn.variants import MODELS


class FoldedConv(Protocol):
    """A convolution with its BatchNorm folded in: PyTorch-layout weight (out, in/groups, kh, kw) and a bias."""

    weight: np.ndarray
    bias: np.ndarray


@dataclass(frozen=True)
class ConvNorm:
    """A convolution and the BatchNorm after it, as a framework stores them (PyTorch layout).

    ``norm`` is (scale, shift, mean, variance); None where the file folded it into ``bias`` (None: zeros).
    """

    weight: np.ndarray
    bias: np.ndarray | None = None
    norm: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None


def from_tf_layout(kernel: np.ndarray, depthwise: bool) -> np.ndarray:
    """A TensorFlow (and Keras) conv kernel in PyTorch's layout: (kh, kw, in, out) -> (out, in, kh, kw); a depthwise
    kernel (kh, kw, channels, multiplier) -> (channels * multiplier, 1, kh, kw)."""
    kernel = np.asarray(kernel, dtype=np.float32)
    if depthwise:
        return np.ascontiguousarray(kernel.transpose(2, 3, 0, 1).reshape(-1, 1, *kernel.shape[:2]))
    return np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))


def conv_shapes(module: nn.Module) -> list[tuple[int, ...]]:
    """The weight shapes of a module's convolutions in order: what a file's chain of convolutions is matched with."""
    return [tuple(m.weight.shape) for m in module.modules() if isinstance(m, nn.Conv2d)]


def match_config(shapes: Sequence[tuple[int, ...]], **fields: Any) -> ModelConfig | None:
    """The registered architecture and width whose convolutions before the pooling have exactly ``shapes`` (with
    ``fields`` set, no classifier); None where none does."""
    for base in MODELS.values():
        config = replace(base, num_classes=0, **fields)
        with torch.device("meta"):  # shapes only: nothing allocated or initialised
            candidate = MobileNet(config)
        if conv_shapes(candidate) == list(shapes):
            return config
    return None


def load_folded(module: nn.Module, sources: Sequence[FoldedConv]) -> None:
    """Load a file's convolutions, in order, into ``module``'s conv + BatchNorm pairs.

    Each BatchNorm becomes the identity plus the file's folded bias: var = 1 - eps makes sqrt(var + eps) exactly 1.
    """
    load_chain(module, [ConvNorm(source.weight, source.bias) for source in sources])


def load_chain(module: nn.Module, sources: Sequence[ConvNorm]) -> None:
    """Load convolutions and their BatchNorms (or folded biases), in order, into ``module``'s conv + BatchNorm pairs."""
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    norms = [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for conv, norm, source in zip(convs, norms, sources, strict=True):
            conv.weight.copy_(torch.from_numpy(np.array(source.weight, dtype=np.float32)))
            if source.norm is not None:
                tensors = (norm.weight, norm.bias, norm.running_mean, norm.running_var)
                for tensor, value in zip(tensors, source.norm, strict=True):
                    tensor.copy_(torch.from_numpy(np.array(value, dtype=np.float32)))
                if source.bias is not None:  # a conv bias before the BatchNorm shifts its mean
                    norm.running_mean.sub_(torch.from_numpy(np.array(source.bias, dtype=np.float32)))
                continue
            norm.weight.fill_(1.0)
            if source.bias is None:  # an exporter drops a folded bias that is all zeros
                norm.bias.zero_()
            else:
                norm.bias.copy_(torch.from_numpy(np.array(source.bias, dtype=np.float32)))
            norm.running_mean.zero_()
            norm.running_var.fill_(1.0 - norm.eps)


def without_background(classifier: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """A (weight, bias) classifier of TensorFlow's 1001 classes without the first, "background": ImageNet's order;
    any other classifier as it is."""
    weight, bias = classifier
    return (weight[1:], bias[1:]) if len(bias) == 1001 else classifier


def load_classifier(model: MobileNet, weight: np.ndarray, bias: np.ndarray) -> None:
    """Load a (classes, features) matrix, or a 1x1 conv of that shape, into the model's classifier."""
    classifier = model.classifier[1]
    with torch.no_grad():
        matrix = torch.from_numpy(np.array(weight, dtype=np.float32))
        classifier.weight.copy_(matrix.reshape(classifier.weight.shape))
        classifier.bias.copy_(torch.from_numpy(np.array(bias, dtype=np.float32)))
