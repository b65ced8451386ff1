"""Models made ready for a check."""

from __future__ import annotations

import tempfile
from functools import cache
from pathlib import Path

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


@cache
def tiny_weights(kind: str) -> bytes:
    """Our safetensors of a tiny model of each kind ("classifier", "segmenter", "detector"), random weights, classes
    named a, b, c."""
    from mobilenet.registry import create_model
    from mobilenet.weights import save_weights

    torch.manual_seed(0)
    model = {
        "classifier": lambda: create_model("mobilenet_v2_035", num_classes=3, input_size=32),
        "segmenter": lambda: create_model("deeplabv3_mobilenet_v2", width_mult=0.35, num_classes=3, input_size=65),
        "detector": lambda: create_model("ssdlite_mobilenet_v2", width_mult=0.35, num_classes=3, input_size=96),
    }[kind]()
    model.class_names = ["a", "b", "c"]
    with torch.no_grad():  # outputs that differ between images and classes, as a trained model's do
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    trained_like(model)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "w.safetensors"
        save_weights(model, path)
        return path.read_bytes()


def exported_tiny(folder: Path, kind: str, suffix: str, *flags: str) -> tuple[Path, Path, str]:
    """A tiny model of ``kind`` (see :func:`tiny_weights`) saved in ``folder`` and exported by ``mobilenet export``
    to the format its ``suffix`` names: the weights, the exported file, and what the command printed."""
    from tests.helpers.faults import run_in_process

    weights = folder / f"{kind}.safetensors"
    weights.write_bytes(tiny_weights(kind))
    graph = folder / f"{kind}{suffix}"
    outcome = run_in_process(["export", str(weights), str(graph), *flags])
    assert outcome.code == 0, outcome.describe()
    return weights, graph, outcome.stdout
