"""Weights in and out: safetensors with metadata, torchvision and timm state dicts, TFLite files.

Nothing here executes code from a file: safetensors is plain tensors, and PyTorch pickles are read
with ``weights_only=True``.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, safe_open, save_file

from mobilenet.model import MobileNet, ModelConfig
from mobilenet.preprocess import Preprocessing

_META_CONFIG, _META_CLASSES, _META_PRE = (
    "mobilenet.config",
    "mobilenet.class_names",
    "mobilenet.preprocessing",
)


@dataclass
class Checkpoint:
    """What a weights file holds: tensors, and (when the file says) how to build and feed the model."""

    state_dict: dict[str, torch.Tensor]
    config: ModelConfig | None = None
    class_names: list[str] | None = None
    preprocessing: Preprocessing | None = None


def save_weights(
    model: MobileNet,
    path: str | Path,
    class_names: list[str] | None = None,
    preprocessing: Preprocessing | None = None,
) -> None:
    """Write ``model``'s weights as safetensors with its config, class names and preprocessing.

    The file is written beside its destination and renamed over it, so a crash never leaves a
    half-written file where a good one was.
    """
    class_names = class_names if class_names is not None else model.class_names
    preprocessing = preprocessing or model.preprocessing
    if class_names is not None and len(class_names) != model.config.num_classes:
        raise ValueError(f"{len(class_names)} class names for a model with {model.config.num_classes} classes")
    metadata = {_META_CONFIG: json.dumps(model.config.to_dict()), _META_PRE: preprocessing.to_json()}
    if class_names is not None:
        metadata[_META_CLASSES] = json.dumps(list(class_names))
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path``, renamed over it only if the ``with`` block succeeds.

    A crash at any moment leaves either the old file or the new one, never half of one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private (0600); the result is an ordinary file
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def atomic_write(path: str | Path, write: Callable[[str], object]) -> None:
    """Have ``write`` fill a temporary file beside ``path``, then rename it over ``path``."""
    with atomic_path(path) as tmp:
        write(str(tmp))


def _read_safetensors(path: Path) -> Checkpoint:
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    return with_metadata(Checkpoint(load_file(str(path))), metadata)


def with_metadata(checkpoint: Checkpoint, metadata: dict[str, str]) -> Checkpoint:
    """``checkpoint`` with the config, class names and preprocessing that ``metadata`` holds (as saved)."""
    if _META_CONFIG in metadata:
        known = {f.name for f in fields(ModelConfig)}
        values = {k: v for k, v in json.loads(metadata[_META_CONFIG]).items() if k in known}
        checkpoint.config = ModelConfig(**values)
    if _META_CLASSES in metadata:
        checkpoint.class_names = json.loads(metadata[_META_CLASSES])
    if _META_PRE in metadata:
        checkpoint.preprocessing = Preprocessing.from_json(metadata[_META_PRE])
    return checkpoint


_TIMM_BLOCK = re.compile(r"blocks\.(\d+)\.(\d+)\.(\w+)\.(.+)")
# timm names inside a block -> our (torchvision's) names, for blocks with and without expansion.
_TIMM_INVERTED = {
    "conv_pw": "conv.0.0",
    "bn1": "conv.0.1",
    "conv_dw": "conv.1.0",
    "bn2": "conv.1.1",
    "conv_pwl": "conv.2",
    "bn3": "conv.3",
}
_TIMM_SEPARABLE = {"conv_dw": "conv.0.0", "bn1": "conv.0.1", "conv_pw": "conv.1", "bn2": "conv.2"}


def timm_to_torchvision(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a timm ``mobilenetv2_*`` / ``mobilenetv1_*`` state dict to our keys."""
    blocks = sorted({(int(m[1]), int(m[2])) for k in state_dict if (m := _TIMM_BLOCK.match(k))})
    index = {block: i + 1 for i, block in enumerate(blocks)}  # features.0 is the stem
    expanding = {(int(m[1]), int(m[2])) for k in state_dict if (m := _TIMM_BLOCK.match(k)) and m[3] == "conv_pwl"}
    head = f"features.{len(blocks) + 1}"
    renamed = {}
    for key, value in state_dict.items():
        if match := _TIMM_BLOCK.match(key):
            block = (int(match[1]), int(match[2]))
            names = _TIMM_INVERTED if block in expanding else _TIMM_SEPARABLE
            new = f"features.{index[block]}.{names[match[3]]}.{match[4]}"
        else:
            module, _, rest = key.partition(".")
            outer = {
                "conv_stem": "features.0.0",
                "bn1": "features.0.1",
                "conv_head": f"{head}.0",
                "bn2": f"{head}.1",
                "classifier": "classifier.1",
            }
            new = f"{outer.get(module, module)}.{rest}"
        renamed[new] = value
    return renamed


def _read_torch(path: Path) -> Checkpoint:
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"cannot read {path} as a PyTorch state dict: {str(error).splitlines()[0]}") from None
    for wrapper in ("state_dict", "model", "model_state_dict"):
        if isinstance(data, dict) and isinstance(data.get(wrapper), dict):
            data = data[wrapper]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise ValueError(f"{path} holds no state dict (a dict of tensors)")
    data = {k.removeprefix("module."): v for k, v in data.items()}  # saved from DistributedDataParallel
    if "conv_stem.weight" in data:
        data = timm_to_torchvision(data)
    return Checkpoint(data)


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read any supported weights file: ``.safetensors``, ``.tflite``, or a PyTorch state dict."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    if path.suffix == ".tflite":
        from mobilenet.tflite import import_tflite

        model, preprocessing = import_tflite(path)
        return Checkpoint(model.state_dict(), model.config, _labels_beside(path, model.config), preprocessing)
    return _read_torch(path)


def _labels_beside(path: Path, config: ModelConfig) -> list[str] | None:
    """Class names from a ``*labels*.txt`` beside a TFLite file (Coral's layout), if one fits.

    A file with one line more than the classes starts with TensorFlow's "background", dropped here.
    """
    for candidate in sorted(path.parent.glob("*labels*.txt")):
        names = [line.strip() for line in candidate.read_text().splitlines() if line.strip()]
        if len(names) == config.num_classes + 1:
            return names[1:]
        if len(names) == config.num_classes:
            return names
    return None


def _describe(config: ModelConfig) -> str:
    return f"{config.arch} width {config.width_mult:g} with {config.num_classes} classes"


def load_state_dict(model: MobileNet, state_dict: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Load with strict key and shape matching; a mismatch is one error naming what differs."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    wrong = [k for k in own if k in state_dict and state_dict[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        problems = []
        if wrong:
            k = wrong[0]
            problems.append(
                f"{len(wrong)} tensors differ in shape (first {k}: {list(state_dict[k].shape)} in the file, "
                f"{list(own[k].shape)} in the model)"
            )
        if missing:
            problems.append(f"{len(missing)} missing (first {missing[0]})")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected (first {unexpected[0]})")
        raise ValueError(f"{source} does not fit {_describe(model.config)}: {'; '.join(problems)}{_hint(state_dict)}")
    model.load_state_dict(state_dict, strict=True)


def _hint(state_dict: dict[str, torch.Tensor]) -> str:
    """What the checkpoint itself looks like, so the error can say which model to build."""
    stem, classifier = state_dict.get("features.0.0.weight"), state_dict.get("classifier.1.weight")
    if stem is None:
        return ""
    blocks = {k.split(".")[1] for k in state_dict if k.startswith("features.")}
    arch = "mobilenet_v2" if len(blocks) == 19 else "mobilenet_v1" if len(blocks) == 14 else "unknown"
    classes = f", {classifier.shape[0]} classes" if classifier is not None else ""
    return f" (the file looks like {arch} with a {stem.shape[0]}-channel stem{classes})"


def load_model(path: str | Path, expect: ModelConfig | None = None, **overrides: Any) -> MobileNet:
    """Build the model a weights file describes and load it.

    Files that carry their config (ours, TFLite) decide the architecture; ``overrides`` change any
    field that keeps the weights' shapes (``output_stride``, ``dropout``, ...). For a bare state dict
    the architecture is ``expect`` (MobileNetV2 1.0 by default). If ``expect`` names another
    architecture or width than the file holds, that is an error rather than a silent swap.
    """
    checkpoint = read_checkpoint(path)
    config = checkpoint.config or expect or ModelConfig()
    file_shape = (config.arch, config.width_mult)
    if expect is not None and checkpoint.config is not None and (expect.arch, expect.width_mult) != file_shape:
        name = f"{config.arch}_{round(config.width_mult * 100):03d}"
        raise ValueError(
            f"{path} holds {_describe(config)}, not {expect.arch} width {expect.width_mult:g}: "
            f"create the model named for the file ({name})"
        )
    config = replace(config, **overrides)
    model = MobileNet(config)
    load_state_dict(model, checkpoint.state_dict, source=str(path))
    model.class_names = checkpoint.class_names
    if checkpoint.preprocessing is not None:
        model.preprocessing = checkpoint.preprocessing
    return model
