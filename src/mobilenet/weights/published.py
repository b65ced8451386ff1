"""Published weights known by name: the record each kind lists its files in, and how a name is looked up.

Names follow timm's ``<model>.<tag>``. A file is fetched once into the cache (:mod:`mobilenet.weights.download`)
and checked against its sha256 every time it is used. ``top1_measured`` is what this library scores with
the file, and on what, where the file is in the project's shared test data. Each task package lists its own
(``mobilenet.classification.published``, ...); the registry gathers them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mobilenet.nn.preprocessing import Preprocessing
from mobilenet.weights.tf_checkpoint import index_of

# google-coral/test_data pinned to one commit, so a file can never change under its checksum.
CORAL = "https://github.com/google-coral/test_data/raw/104342d2d3480b3e66203073dac24f4e2dbb4c41/"
CORAL_LICENSE = "Apache-2.0"
# What a weights file is called: anything else without a "/" that does not exist is taken for a name.
FILE_SUFFIXES = (
    *(".safetensors", ".pth", ".pt", ".bin", ".tflite", ".xml", ".onnx", ".pb", ".h5", ".keras"),
    *(".ckpt", ".index"),  # TensorFlow's checkpoints: model.ckpt names model.ckpt.index and its data shards
)


@dataclass(frozen=True)
class PublishedWeights:
    """One published weights file: what it is, where it comes from, how to feed it and how good it is."""

    name: str  # "mobilenet_v2_100.coral_uint8_224"
    model: str  # the registered model name it loads into
    url: str
    sha256: str  # the whole hex digest, or (torchvision's convention) its first hex digits
    size: int | None  # bytes, where known
    license: str
    preprocessing: Preprocessing
    categories: str  # what the outputs mean
    top1_published: float | None  # %, the publisher's figure for this architecture (ImageNet validation)
    top1_measured: str | None  # ours with this file, and on what
    note: str = ""
    default: bool = False  # what weights="DEFAULT" loads into its model

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[1]


def is_weights_name(weights: str | Path) -> bool:
    """Whether ``weights`` names published weights ("DEFAULT", "mobilenet_v2_100.tv2_in1k") rather than a file."""
    text = str(weights)
    if text == "DEFAULT":
        return True
    return not (Path(text).exists() or "/" in text or Path(text).suffix in FILE_SUFFIXES or index_of(text) is not None)


def find_weights(entries: Sequence[PublishedWeights], model: str, weights: str) -> PublishedWeights:
    """The entry of ``entries`` for ``weights`` ("DEFAULT" or a name) of ``model``, or one line saying what exists."""
    for_model = [entry for entry in entries if entry.model == model]
    found = [entry for entry in for_model if entry.default] if weights == "DEFAULT" else []
    found = found or [entry for entry in entries if entry.name == weights]
    if not found:
        known = ", ".join(sorted(entry.name for entry in for_model)) or "none yet"
        raise ValueError(
            f"no published weights {weights!r} for {model}: known for it: {known} (`mobilenet weights` lists all), "
            "or pass the path of a weights file"
        )
    if found[0].model != model:
        raise ValueError(f"{weights} are weights of {found[0].model}, not of {model}: create {found[0].model} instead")
    return found[0]
