"""Our weights file: safetensors, with what the model is and expects in its metadata.

The metadata is plain JSON strings under public keys, the same in every file mobilenet writes (our
safetensors, the ONNX and TorchScript exports, OpenVINO IRs):

- ``mobilenet.format``: the version of this layout;
- ``mobilenet.kind``: what kind of model the file holds (``"mobilenet"``: a MobileNet classifier or
  backbone; detection and segmentation models name their own kind);
- ``mobilenet.config``: the kind's config (for ``"mobilenet"``, :class:`ModelConfig`'s fields);
- ``mobilenet.class_names`` (when known) and ``mobilenet.preprocessing``.

Nothing here executes code from a file: safetensors is plain tensors and JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save

from mobilenet.nn.config import MOBILENET, ModelConfig
from mobilenet.nn.preprocessing import Preprocessing
from mobilenet.utils.files import atomic_write

FORMAT_VERSION = "1"
KEY_FORMAT = "mobilenet.format"
KEY_KIND = "mobilenet.kind"
KEY_CONFIG = "mobilenet.config"
KEY_CLASSES = "mobilenet.class_names"
KEY_PREPROCESSING = "mobilenet.preprocessing"
METADATA_KEYS = (KEY_FORMAT, KEY_KIND, KEY_CONFIG, KEY_CLASSES, KEY_PREPROCESSING)


@dataclass
class ModelInfo:
    """What a file says about its model: its kind and config, class names and preprocessing (None: unsaid).

    ``config`` is a :class:`ModelConfig` for the ``"mobilenet"`` kind; other kinds keep theirs as the raw
    dict in ``config_fields``, for the package that builds that kind.
    """

    kind: str | None = None
    config: ModelConfig | None = None
    class_names: list[str] | None = None
    preprocessing: Preprocessing | None = None
    config_fields: dict[str, Any] | None = None


@dataclass
class Checkpoint:
    """What a weights file holds: tensors, and (when the file says) how to build and feed the model."""

    state_dict: dict[str, torch.Tensor]
    info: ModelInfo = field(default_factory=ModelInfo)

    @property
    def config(self) -> ModelConfig | None:
        return self.info.config

    @property
    def class_names(self) -> list[str] | None:
        return self.info.class_names

    @property
    def preprocessing(self) -> Preprocessing | None:
        return self.info.preprocessing


def model_metadata(model: Any, class_names: list[str] | None = None) -> dict[str, str]:
    """The metadata strings of ``model``, in a fixed key order.

    ``model`` has a ``config`` with ``to_dict()``; its kind is its ``kind`` attribute (default ``"mobilenet"``).
    """
    names = class_names if class_names is not None else getattr(model, "class_names", None)
    preprocessing = getattr(model, "preprocessing", None) or Preprocessing(input_size=model.config.input_size)
    metadata = {
        KEY_FORMAT: FORMAT_VERSION,
        KEY_KIND: getattr(model, "kind", MOBILENET),
        KEY_CONFIG: json.dumps(model.config.to_dict(), sort_keys=True),
        KEY_PREPROCESSING: preprocessing.to_json(),
    }
    if names is not None:
        metadata[KEY_CLASSES] = json.dumps(list(names))
    return dict(sorted(metadata.items()))


def parse_metadata(metadata: dict[str, str], source: str = "the file") -> ModelInfo:
    """The :class:`ModelInfo` that metadata strings hold; unknown config fields (from newer versions) are ignored."""
    kind = metadata.get(KEY_KIND, MOBILENET if KEY_CONFIG in metadata else None)
    info = ModelInfo(kind=kind)
    try:
        if KEY_CONFIG in metadata:
            info.config_fields = json.loads(metadata[KEY_CONFIG])
        if KEY_CONFIG in metadata and kind == MOBILENET:
            known = {f.name for f in fields(ModelConfig)}
            info.config = ModelConfig(**{k: v for k, v in info.config_fields.items() if k in known})
        if KEY_CLASSES in metadata:
            info.class_names = json.loads(metadata[KEY_CLASSES])
        if KEY_PREPROCESSING in metadata:
            info.preprocessing = Preprocessing.from_json(metadata[KEY_PREPROCESSING])
    except (json.JSONDecodeError, TypeError, AttributeError) as error:
        raise ValueError(f"{source} has unreadable mobilenet metadata ({error}): save it again") from None
    return info


def save_weights(
    model: Any,
    path: str | Path,
    class_names: list[str] | None = None,
    preprocessing: Preprocessing | None = None,
) -> None:
    """Write a model's weights as safetensors, with its kind, config, class names and preprocessing as metadata.

    The file is written beside its destination and renamed over it, so a crash never leaves a
    half-written file where a good one was. Equal models give byte-equal files.

    Args:
        model: any model of the package (it has a ``config``; its ``kind``, ``class_names`` and
            ``preprocessing`` are saved where it has them).
        path: the ``.safetensors`` file to write.
        class_names: names to save instead of the model's.
        preprocessing: preprocessing to save instead of the model's.
    """
    names = class_names if class_names is not None else getattr(model, "class_names", None)
    classes = model.num_classes if hasattr(model, "num_classes") else model.config.num_classes
    if names is not None and len(names) != classes:
        raise ValueError(f"{len(names)} class names for a model with {classes} classes")
    metadata = model_metadata(model, names)
    if preprocessing is not None:
        metadata[KEY_PREPROCESSING] = preprocessing.to_json()
    # Cloned: a state dict may share storage between keys (NNCF's quantizers do), which safetensors refuses.
    tensors = {k: v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}
    data = canonical_header(save(tensors, metadata=metadata))
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def canonical_header(data: bytes) -> bytes:
    """A safetensors file whose header lists its metadata in sorted order.

    The writer orders metadata as a hash map does, which differs from run to run: equal weights would
    give files with different checksums. The header keeps its length (same keys, same values), so the
    tensor data that follows does not move.
    """
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + length])
    header["__metadata__"] = dict(sorted(header.get("__metadata__", {}).items()))
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    if len(text) > length:  # never: the same content, reordered
        return data
    return data[:8] + text.ljust(length, b" ") + data[8 + length :]


def read_safetensors(path: Path) -> Checkpoint:
    """A safetensors file's tensors and the model information its metadata holds."""
    metadata = safetensors_metadata(path)
    return Checkpoint(safetensors_tensors(path), parse_metadata(metadata, str(path)))


def safetensors_tensors(path: Path) -> dict[str, torch.Tensor]:
    """A safetensors file's tensors; a file cut short is one line saying so."""
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as error:
        raise not_complete(path, error) from None


def safetensors_metadata(path: Path) -> dict[str, str]:
    """A safetensors file's metadata strings alone, read from its header (no tensor is loaded)."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            return handle.metadata() or {}
    except (SafetensorError, OSError) as error:
        raise not_complete(path, error) from None


def read_kind(path: Path) -> str | None:
    """The kind of model our safetensors file holds ("mobilenet", "ssd", ...), from its header; None: not ours."""
    return parse_metadata(safetensors_metadata(path), str(path)).kind


def not_complete(path: Path, error: Exception) -> ValueError:
    return ValueError(
        f"{path} is not a complete safetensors file ({str(error).splitlines()[0]}): download or save it again"
    )
