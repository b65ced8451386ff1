"""Keras's MobileNets: keras-applications' published ``.h5`` weights (Keras 2's layout,
``mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5``, ``mobilenet_7_5_192_tf.h5``), Keras 3's
``.weights.h5`` and ``.keras`` files, read with h5py alone: no Keras, and nothing in the file executed.

Keras names every layer of its two MobileNets (``Conv1``, ``block_3_expand_BN``, ``conv_pw_7``); the chain is read
in that order and matched with our widths. Its conventions are TensorFlow's: "SAME" padding, BatchNorm eps 1e-3,
pixels scaled to [-1, 1]; 1000 classes without a background; V2 classifies with a dense layer (``predictions``),
V1 with a 1x1 conv (``conv_preds``), both a linear layer on the pooled features.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from mobilenet.nn.config import MOBILENET
from mobilenet.nn.model import MobileNet
from mobilenet.nn.preprocessing import TF_MEAN, TF_STD, Preprocessing
from mobilenet.utils.optional import require
from mobilenet.weights.chain import ConvNorm, from_tf_layout, load_chain, load_classifier, match_config
from mobilenet.weights.format import Checkpoint, ModelInfo

SUFFIXES = (".h5", ".keras")
# Keras's BatchNorm: eps 1e-3 in both; momentum 0.999 in V2, Keras's default 0.99 in V1 (PyTorch's is 1 - that).
KERAS_BN = {"mobilenet_v2": (1e-3, 0.999), "mobilenet_v1": (1e-3, 0.99)}
CLASSIFIERS = {"mobilenet_v2": "predictions", "mobilenet_v1": "conv_preds"}
# keras-applications' file names carry the resolution (and V1's alpha as "7_5"): "..._1.0_224.h5", "..._7_5_192_tf.h5".
RESOLUTION = re.compile(r"_\d[._]\d+_(\d+)(?:_tf)?(?:_no_top)?\.h5$")


@dataclass(frozen=True)
class KerasFile:
    """What a Keras file holds: each layer's arrays in Keras's order, and the model's config where it was saved."""

    layers: dict[str, list[np.ndarray]]
    config: dict[str, Any] | None


def layer_pairs(arch: str) -> list[tuple[str, str]]:
    """Keras's (convolution, BatchNorm) layer names of an architecture, in execution order."""
    if arch == "mobilenet_v2":  # the first bottleneck expands nothing: its depthwise conv reads the stem
        pairs = [
            ("Conv1", "bn_Conv1"),
            *[(f"expanded_conv_{p}", f"expanded_conv_{p}_BN") for p in ("depthwise", "project")],
        ]
        for block in range(1, 17):
            pairs += [(f"block_{block}_{p}", f"block_{block}_{p}_BN") for p in ("expand", "depthwise", "project")]
        return [*pairs, ("Conv_1", "Conv_1_bn")]
    pairs = [("conv1", "conv1_bn")]
    for block in range(1, 14):
        pairs += [(f"conv_dw_{block}", f"conv_dw_{block}_bn"), (f"conv_pw_{block}", f"conv_pw_{block}_bn")]
    return pairs


def is_depthwise(conv: str) -> bool:
    return "depthwise" in conv or conv.startswith("conv_dw")


def keras_names(layers: dict[str, list[np.ndarray]]) -> dict[str, list[np.ndarray]]:
    """Keras 3's weights under Keras's layer names: its files name each layer by class and rank among that class
    (``conv2d_3``, ``batch_normalization_7``), numbered in the model's layer order, which is the chain's."""
    depthwise = sum(name.startswith("depthwise_conv2d") for name in layers)
    arch = {17: "mobilenet_v2", 13: "mobilenet_v1"}.get(depthwise)
    if arch is None:
        return layers  # no MobileNet: read_keras says so
    ranks: Counter[str] = Counter()
    taken: set[str] = set()

    def take(kind: str) -> list[np.ndarray]:
        rank = ranks[kind]
        ranks[kind] += 1
        name = kind if rank == 0 else f"{kind}_{rank}"
        taken.add(name)
        return layers.get(name, [])

    named = {}
    for conv, norm in layer_pairs(arch):
        named[conv] = take("depthwise_conv2d" if is_depthwise(conv) else "conv2d")
        named[norm] = take("batch_normalization")
    if sum(name.startswith("dense") for name in layers) <= 1:  # Keras's classifier, or a user's one dense layer
        named[CLASSIFIERS[arch]] = take("dense" if arch == "mobilenet_v2" or "dense" in layers else "conv2d")
    rest = {name: arrays for name, arrays in layers.items() if name not in taken}  # a head of the user's
    return {name: arrays for name, arrays in named.items() if arrays} | rest


def is_keras(path: Path) -> bool:
    return path.suffix in SUFFIXES


def read_keras(path: str | Path) -> Checkpoint:
    """A Keras MobileNetV1/V2 file as our tensors and settings (a ``_no_top`` file: a backbone, 0 classes)."""
    path = Path(path)
    found = read_file(path)
    arch = next((a for a, stem in (("mobilenet_v2", "Conv1"), ("mobilenet_v1", "conv1")) if stem in found.layers), None)
    if arch is None:
        raise ValueError(f"{path} holds Keras weights of no MobileNetV1/V2 (no layer 'Conv1' or 'conv1')")
    eps, momentum = bn_settings(found.config, arch)
    chain = [conv_norm(found.layers, conv, norm, str(path)) for conv, norm in layer_pairs(arch)]
    shapes = [tuple(layer.weight.shape) for layer in chain]
    fields = {
        "padding": "tf_same",
        "bn_eps": eps,
        "bn_momentum": round(1 - momentum, 6),
        "input_size": input_size(path, found),
    }
    config = match_config(shapes, **fields)
    if config is None or config.arch != arch:
        raise ValueError(f"{path}: its {len(shapes)} convolutions (first {shapes[0]}) match no {arch} of ours")
    classifier = found.layers.get(CLASSIFIERS[arch]) or own_head(found.layers, arch, str(path))
    if classifier:
        kernel, bias = classifier[0], classifier[1]
        config = replace(config, num_classes=kernel.shape[-1])
    model = MobileNet(config)
    load_chain(model.features, chain)
    if classifier:  # (in, classes) or V1's (1, 1, in, classes): our (classes, in)
        load_classifier(model, kernel.reshape(-1, kernel.shape[-1]).T, bias)
    preprocessing = Preprocessing(input_size=config.input_size, mean=TF_MEAN, std=TF_STD)
    return Checkpoint(model.state_dict(), ModelInfo(MOBILENET, config, None, preprocessing))


def own_head(layers: dict[str, list[np.ndarray]], arch: str, source: str) -> list[np.ndarray] | None:
    """The classifier of a MobileNet under a head of the user's (``Sequential([base, pooling, Dense(n)])``, Keras's
    way to fine-tune): one dense layer; None where there is none (a backbone). More is no model of ours."""
    known = {name for pair in layer_pairs(arch) for name in pair} | {CLASSIFIERS[arch]}
    extra = [name for name in layers if name not in known]
    if not extra:
        return None
    if len(extra) == 1 and layers[extra[0]][0].ndim == 2 and len(layers[extra[0]]) == 2:
        return layers[extra[0]]
    raise ValueError(
        f"{source} has a head of its own after the MobileNet ({', '.join(extra)}): mobilenet builds one linear "
        "classifier; save the base model alone (include_top=False) to fine-tune it here"
    )


def conv_norm(layers: dict[str, list[np.ndarray]], conv: str, norm: str, source: str) -> ConvNorm:
    """One Keras conv and its BatchNorm, in PyTorch's layout."""
    if conv not in layers or norm not in layers:
        raise ValueError(f"{source} has no layer {conv if conv not in layers else norm!r}: it is no Keras MobileNet")
    gamma, beta, mean, variance = layers[norm][:4]
    return ConvNorm(from_tf_layout(layers[conv][0], is_depthwise(conv)), None, (gamma, beta, mean, variance))


def bn_settings(config: dict[str, Any] | None, arch: str) -> tuple[float, float]:
    """BatchNorm eps and Keras momentum: the saved model's where it has them, Keras's builders' otherwise."""
    for layer in (config or {}).get("config", {}).get("layers", []):
        if layer.get("class_name") == "BatchNormalization":
            settings = layer.get("config", {})
            return float(settings.get("epsilon", 1e-3)), float(settings.get("momentum", 0.99))
    return KERAS_BN[arch]


def input_size(path: Path, found: KerasFile) -> int:
    """The resolution the model was built for: its input layer's, else the published file's name, else 224."""
    for layer in (found.config or {}).get("config", {}).get("layers", []):
        if layer.get("class_name") == "InputLayer":
            settings = layer.get("config", {})
            shape = settings.get("batch_shape") or settings.get("batch_input_shape") or []
            if len(shape) == 4 and shape[1] and shape[1] == shape[2]:
                return int(shape[1])
    match = RESOLUTION.search(path.name)
    return int(match[1]) if match else 224


def read_file(path: Path) -> KerasFile:
    """The layers of a Keras weights file, or of the weights in a ``.keras`` archive, with its config."""
    h5py = require("h5py", "keras")
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        with opened(path) as (weights, config), h5py.File(weights, "r") as h5:
            if "model_weights" in h5:  # Keras 2's whole-model .h5: the weights, and the config as an attribute
                config = config or json.loads(h5.attrs.get("model_config", "null"))
                return KerasFile(legacy_layers(h5["model_weights"]), config)
            if "layer_names" in h5.attrs:  # Keras 2's weights (keras-applications' files)
                return KerasFile(legacy_layers(h5), config)
            if "layers" in h5:  # Keras 3's: layers/<name>/vars/<i>
                return KerasFile(keras_names(keras3_layers(h5["layers"])), config)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(
            f"{path} is a damaged or foreign file, not Keras weights ({first}): download it again"
        ) from None
    raise ValueError(f"{path} is an HDF5 file but not Keras weights (no layer_names, model_weights or layers)")


@contextmanager
def opened(path: Path) -> Iterator[tuple[Any, dict[str, Any] | None]]:
    """The HDF5 weights (a path, or bytes out of a ``.keras`` zip) and the model config a ``.keras`` file holds."""
    if path.suffix != ".keras":
        yield path, None
        return
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json")) if "config.json" in archive.namelist() else None
        yield io.BytesIO(archive.read("model.weights.h5")), config


def legacy_layers(group: Any) -> dict[str, list[np.ndarray]]:
    """Keras 2's layout: the layers in ``layer_names``, each with its arrays named in ``weight_names``."""
    layers: dict[str, list[np.ndarray]] = {}
    for raw in group.attrs["layer_names"]:
        name = raw.decode() if isinstance(raw, bytes) else str(raw)
        names = [w.decode() if isinstance(w, bytes) else str(w) for w in group[name].attrs.get("weight_names", [])]
        arrays = [np.asarray(group[name][w]) for w in names]
        inner = [w.split("/")[0] for w in names]
        if len(set(inner)) > 1:  # a model inside the model (a MobileNet under the user's head): its own layers
            for layer, array in zip(inner, arrays, strict=True):
                layers.setdefault(layer, []).append(array)
        elif arrays:
            layers[name] = arrays
    return layers


def keras3_layers(group: Any) -> dict[str, list[np.ndarray]]:
    """Keras 3's layout: ``<name>/vars/0``, ``1``, ... in the order the layer made its variables."""
    layers = {}
    for name, layer in group.items():
        if "layers" in layer:  # a model inside the model (a MobileNet under the user's head): its own layers
            layers |= keras3_layers(layer["layers"])
        variables = layer.get("vars")
        if variables is not None and len(variables):
            layers[name] = [np.asarray(variables[str(i)]) for i in range(len(variables))]
    return layers
