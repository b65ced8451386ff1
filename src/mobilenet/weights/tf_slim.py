"""TF-slim's MobileNets (tensorflow/models, ``research/slim``): checkpoints and frozen graphs, read by variable name.

TF-slim's published classifiers (``mobilenet_v1_0.25_128.ckpt``, ``mobilenet_v2_1.4_224_frozen.pb``, and anyone's
``train_image_classifier`` run) name every layer: V1's ``MobilenetV1/Conv2d_0``, then ``Conv2d_{k}_depthwise`` and
``Conv2d_{k}_pointwise``; V2's ``MobilenetV2/Conv``, ``expanded_conv[_k]/{expand,depthwise,project}`` and
``Conv_1``. Each holds ``weights`` (``depthwise_weights`` for a depthwise conv) and a ``BatchNorm`` (gamma, beta,
moving_mean, moving_variance); the logits are a biased 1x1 conv, ``Logits/Conv2d_1c_1x1``, over 1001 classes (0 is
the background, dropped here). The conventions: TF's SAME padding, BatchNorm eps 1e-3 (a frozen graph says its
own), pixels in [-1, 1], and TF-slim's evaluation preprocessing (the central 87.5%, resized as TF1 does).
Where training kept moving averages of the weights (``<name>/ExponentialMovingAverage``), those are read, as
TF-slim's evaluation reads them.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np

from mobilenet.nn.config import MOBILENET
from mobilenet.nn.model import MobileNet
from mobilenet.nn.preprocessing import TF_MEAN, TF_STD, Preprocessing
from mobilenet.weights.chain import (
    ConvNorm,
    from_tf_layout,
    load_chain,
    load_classifier,
    match_config,
    without_background,
)
from mobilenet.weights.format import Checkpoint, ModelInfo
from mobilenet.weights.tf_checkpoint import index_of, read_tf_checkpoint

SCOPES = {"mobilenet_v1": "MobilenetV1", "mobilenet_v2": "MobilenetV2"}
STEMS = {"mobilenet_v1": "Conv2d_0", "mobilenet_v2": "Conv"}
LOGITS = "Logits/Conv2d_1c_1x1"
BN_EPS = 1e-3  # slim.batch_norm's default, which both nets keep
MOVING_AVERAGE = "/ExponentialMovingAverage"
# The resolution in a published name: mobilenet_v1_0.25_128.ckpt, mobilenet_v2_1.0_224_frozen.pb.
RESOLUTION = re.compile(r"_\d\.\d+_(\d+)(?:\.ckpt|_frozen|\.pb)")


def layer_scopes(arch: str) -> list[str]:
    """TF-slim's scope of each convolution, in execution order (V2's first bottleneck expands nothing)."""
    if arch == "mobilenet_v1":
        return ["Conv2d_0", *(f"Conv2d_{k}_{part}" for k in range(1, 14) for part in ("depthwise", "pointwise"))]
    blocks = [f"expanded_conv_{k}/{part}" for k in range(1, 17) for part in ("expand", "depthwise", "project")]
    return ["Conv", "expanded_conv/depthwise", "expanded_conv/project", *blocks, "Conv_1"]


def is_tf_slim_file(path: str | Path) -> bool:
    """Whether ``path`` names a TensorFlow checkpoint (its prefix, ``.index`` or a data shard) or a frozen graph."""
    return Path(path).suffix == ".pb" or index_of(path) is not None


def read_variables(path: Path) -> tuple[dict[str, np.ndarray], float, int | None]:
    """A checkpoint's or frozen graph's variables, its BatchNorm eps and input size (None: the graph does not say)."""
    if path.suffix != ".pb":
        return read_tf_checkpoint(path), BN_EPS, None
    from mobilenet.weights.graphdef import load_frozen_graph

    graph = load_frozen_graph(path)
    epsilons = graph.bn_epsilons()
    return graph.variables(), epsilons.pop() if len(epsilons) == 1 else BN_EPS, graph.input_size()


def logits_classes(path: str | Path) -> int | None:
    """How many classes a TF-slim file's logits have (1001: with TensorFlow's background); None for a backbone."""
    variables = read_variables(Path(path))[0]
    _, prefix = find_net(variables, str(path))
    biases = read(variables, f"{prefix}{LOGITS}/biases")
    return None if biases is None else len(biases)


def read_tf_slim(path: str | Path) -> Checkpoint:
    """A TF-slim MobileNetV1/V2 classifier's checkpoint or frozen graph as our tensors and settings."""
    path = Path(path)
    variables, eps, size = read_variables(path)
    arch, prefix = find_net(variables, str(path))
    chain = [conv_norm(variables, f"{prefix}{scope}", str(path)) for scope in layer_scopes(arch)]
    shapes = [tuple(layer.weight.shape) for layer in chain]
    size = size or (int(match[1]) if (match := RESOLUTION.search(path.name)) else 224)
    config = match_config(shapes, padding="tf_same", bn_eps=eps, input_size=size)
    if config is None or config.arch != arch:
        raise ValueError(f"{path}: its {len(shapes)} convolutions (first {shapes[0]}) match no {arch} of ours")
    weights, biases = (read(variables, f"{prefix}{LOGITS}/{name}") for name in ("weights", "biases"))
    classifier = None if weights is None or biases is None else (weights.reshape(-1, weights.shape[-1]).T, biases)
    classifier = None if classifier is None else without_background(classifier)
    config = replace(config, num_classes=0 if classifier is None else len(classifier[1]))
    model = MobileNet(config)
    load_chain(model.features, chain)
    if classifier is not None:
        load_classifier(model, *classifier)
    preprocessing = Preprocessing(size, crop_pct=0.875, mean=TF_MEAN, std=TF_STD, resize="central_fraction")
    return Checkpoint(model.state_dict(), ModelInfo(MOBILENET, config, None, preprocessing))


def find_net(variables: dict[str, np.ndarray], source: str) -> tuple[str, str]:
    """The architecture, and the scope prefix its variables have (``""``, or ``FeatureExtractor/``, say)."""
    for arch, scope in SCOPES.items():
        stem = f"{scope}/{STEMS[arch]}/weights"
        found = next((name for name in variables if name.endswith(stem)), None)
        if found is not None:
            return arch, found[: -len(stem)] + f"{scope}/"
    first = next(iter(variables), "nothing")
    raise ValueError(
        f"{source} holds no TF-slim MobileNetV1/V2 (no variable MobilenetV1/Conv2d_0/weights or MobilenetV2/Conv/"
        f"weights; the first is {first}): pass a TF-slim classifier's checkpoint or frozen graph"
    )


def read(variables: dict[str, np.ndarray], name: str) -> np.ndarray | None:
    """A variable, as the moving average of its training where the file kept one (TF-slim evaluates with it)."""
    return variables.get(name + MOVING_AVERAGE, variables.get(name))


def conv_norm(variables: dict[str, np.ndarray], scope: str, source: str) -> ConvNorm:
    """One TF-slim conv and its BatchNorm, in PyTorch's layout; BatchNorm without scale or center: 1 and 0."""
    depthwise = read(variables, f"{scope}/depthwise_weights")
    kernel = depthwise if depthwise is not None else read(variables, f"{scope}/weights")
    gamma, beta, mean, variance = (
        read(variables, f"{scope}/BatchNorm/{name}") for name in ("gamma", "beta", "moving_mean", "moving_variance")
    )
    if kernel is None or mean is None or variance is None:
        raise ValueError(f"{source} has no {scope}/weights with its BatchNorm: it is no TF-slim MobileNet classifier")
    norm = (
        np.ones_like(mean) if gamma is None else gamma,
        np.zeros_like(mean) if beta is None else beta,
        mean,
        variance,
    )
    return ConvNorm(from_tf_layout(kernel, depthwise is not None), None, norm)
