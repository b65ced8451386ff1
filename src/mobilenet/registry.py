"""The one list of model kinds, and everything that dispatches on it: models by name, weights files by content.

The built-in kinds are listed here and nowhere else: each is a task package's declaration
(:class:`~mobilenet.kinds.ModelKind`, in its ``kind`` module). A plugin adds its own with :func:`register`, or
through the ``mobilenet.kinds`` entry-point group of its distribution, which every process (the command line's
too) reads on first use. Whatever takes "a model" or "a weights file" (``create_model``, :func:`load`, the trainer's
tasks, every command) asks this module which kind it is, so a file given to the wrong command is answered here.
"""

from __future__ import annotations

import fnmatch
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mobilenet.kinds import ModelKind, resolve
from mobilenet.weights.published import FILE_SUFFIXES, PublishedWeights, is_weights_name

if TYPE_CHECKING:
    from torch import nn

    from mobilenet.data.images import ImageSource
    from mobilenet.inference.deploy import Deployed
    from mobilenet.nn.features import FeatureLocation

# The built-in kinds, in the order they are listed and tried on a file.
BUILTIN = (
    "mobilenet.classification.kind:KIND",
    "mobilenet.segmentation.kind:KIND",
    "mobilenet.detection.kind:KIND",
)
ENTRY_POINT_GROUP = "mobilenet.kinds"  # a plugin's distribution names its ModelKind objects here

# What a weights file may be named: our formats, the published ones, a Lightning checkpoint, or no extension.
WEIGHTS_SUFFIXES = (*FILE_SUFFIXES, "")


class Registry:
    """The kinds of this process: the built-in ones, the installed plugins', and those registered since."""

    def __init__(self) -> None:
        self.found: list[ModelKind] | None = None  # read on first use: the declarations are cheap, but not free
        self.added: list[ModelKind] = []

    def all(self) -> list[ModelKind]:
        if self.found is None:
            plugins = [entry.load() for entry in entry_points(group=ENTRY_POINT_GROUP)]
            self.found = []
            for kind in [*map(resolve, BUILTIN), *plugins]:
                check_new(kind, self.found)
                self.found.append(kind)
        return [*self.found, *self.added]


REGISTRY = Registry()


def check_new(kind: ModelKind, known: list[ModelKind]) -> None:
    """Refuse a kind whose task, file kind, models, recipes or weights names another kind already has."""
    if not isinstance(kind, ModelKind):
        raise TypeError(f"a kind is a mobilenet.kinds.ModelKind, not {type(kind).__name__}")
    for other in known:
        clashes = {
            "task name": {kind.name} & {other.name},
            "file kind": {kind.file_kind} & {other.file_kind},
            "model names": set(kind.models) & set(other.models),
            "recipe names": set(kind.recipes) & set(other.recipes),
            "weights names": {w.name for w in kind.published} & {w.name for w in other.published},
        }
        for what, names in clashes.items():
            if names:
                raise ValueError(f"kind {kind.name!r} has the {what} {sorted(names)[0]!r} of kind {other.name!r}")
    if kind.fallback and any(other.fallback for other in known):
        raise ValueError(f"kind {kind.name!r} cannot read every file: another kind already does")


def register(kind: ModelKind) -> ModelKind:
    """Add ``kind`` for this process (a plugin's, or a test's); its names must all be new. Returns it."""
    check_new(kind, REGISTRY.all())
    REGISTRY.added.append(kind)
    return kind


def unregister(name: str) -> None:
    """Remove a kind that :func:`register` added."""
    REGISTRY.added = [kind for kind in REGISTRY.added if kind.name != name]


def kinds() -> list[ModelKind]:
    """Every registered kind: the built-in ones first (classification, segmentation, detection)."""
    return REGISTRY.all()


def kind(name: str | None = None) -> ModelKind:
    """The kind of the task ``name`` (None: the first, classification), or one line listing the tasks."""
    known = kinds()
    if name is None:
        return known[0]
    for candidate in known:
        if candidate.name == name:
            return candidate
    raise ValueError(f"unknown task {name!r}: choose one of {', '.join(k.name for k in known)}")


def kind_of_model(name: str) -> ModelKind:
    """The kind of a registered model name, or one line listing the names."""
    for candidate in kinds():
        if name in candidate.models:
            return candidate
    raise ValueError(f"unknown model {name!r}; available: {', '.join(list_models())}")


def kind_of_file_kind(file_kind: str | None, source: str) -> ModelKind:
    """The kind whose files say ``file_kind``."""
    for candidate in kinds():
        if candidate.file_kind == file_kind:
            return candidate
    raise ValueError(
        f"{source} holds a {file_kind!r} model, which no installed kind reads: install the package that made it"
    )


def kind_of(model: Any) -> ModelKind:
    """The kind of a model object (its ``kind`` attribute: the file kind it saves as), or of a deployed one."""
    return kind_of_file_kind(getattr(model, "kind", kinds()[0].file_kind), type(model).__name__)


def kind_of_file(path: str | Path) -> ModelKind:
    """The kind a weights file holds, told by its content (:func:`identified_kind`); a file that no kind identifies
    is the fallback kind's to read."""
    return identified_kind(path) or next(candidate for candidate in kinds() if candidate.fallback)


def kind_of_weights(weights: str | Path) -> ModelKind:
    """The kind of a weights file (:func:`kind_of_file`), or of the model that published weights of that name load
    into; one line for an unknown name ("DEFAULT" names no model's: its model must be given)."""
    if not is_weights_name(weights):
        return kind_of_file(weights)
    if str(weights) == "DEFAULT":
        raise ValueError("weights DEFAULT needs a model: the default weights of which model? (--model NAME)")
    return kind_of_model(published_entry(weights).model)


def identified_kind(path: str | Path) -> ModelKind | None:
    """The kind a weights file holds, told by its content: our safetensors by their header, an ONNX file or OpenVINO
    IR or ExecuTorch program of ours by its metadata, other files by the kinds that claim them; None where none
    does."""
    from mobilenet.weights.format import read_kind
    from mobilenet.weights.tf_checkpoint import index_of

    path = Path(path)
    if path.is_dir():  # a folder of another library's layout (transformers') is a model if a kind claims it
        if found := next((kind for kind in kinds() if kind.claims is not None and kind.call("claims", path)), None):
            return found
        raise ValueError(f"{path} is a folder: pass the weights file inside it (best.safetensors, say)")
    checkpoint = index_of(path) is not None  # TensorFlow's, named by its prefix, its .index or a data shard
    if not path.is_file() and not checkpoint:
        raise FileNotFoundError(f"weights file not found: {path}")
    if path.suffix == ".safetensors" and (file_kind := read_kind(path)) is not None:
        return kind_of_file_kind(file_kind, str(path))
    if path.suffix in (".xml", ".onnx", ".pte"):  # a graph mobilenet exported: its metadata says
        from mobilenet.inference.deploy import GRAPHS, graph_kind

        if (file_kind := graph_kind(path)) is not None:
            return kind_of_file_kind(file_kind, str(path))
        if path.suffix == ".onnx":  # anyone's ONNX graph: a classifier's weights are recovered from it
            return None
        raise ValueError(
            f"{path} carries no mobilenet metadata (kind, config): run it with {GRAPHS[path.suffix]} directly"
        )
    if path.suffix.lower() not in WEIGHTS_SUFFIXES and not checkpoint:
        raise ValueError(
            f"{path} is not a weights file: give a .safetensors, .pth, .pt, .bin, .tflite, .h5, .keras, .onnx or .pb "
            "file, a TensorFlow checkpoint (model.ckpt), or an .xml or .pte that mobilenet exported"
        )
    # The fallback kind's claim last: the other kinds know their own files best (an SSD's TFLite file, say).
    claimants = sorted((kind for kind in kinds() if kind.claims is not None), key=lambda kind: kind.fallback)
    return next((kind for kind in claimants if kind.call("claims", path)), None)


def wrong_kind(source: str, found: ModelKind, wanted: ModelKind) -> str:
    """Why a file of ``found``'s kind is not ``wanted``'s. A file that no kind identifies is not said to hold the
    fallback kind's model (it may hold none), only not ``wanted``'s."""
    if found.fallback and identified_kind(source) is None:
        return f"{source} holds no {wanted.name} model (a {found.name} one at most)"
    return f"{source} holds a {found.name} model, not a {wanted.name} one"


class WrongKind(ValueError):
    """A file of one kind where another was expected: the command line words it as commands."""

    def __init__(self, source: str, found: ModelKind, wanted: ModelKind) -> None:
        self.source, self.found, self.wanted = source, found, wanted
        super().__init__(
            f"{wrong_kind(source, found, wanted)}: load it with mobilenet.registry.load({source!r}), or create one of "
            f"its models ({found.default_model}, ...)"
        )


def check_weights(weights: str | Path, model: str) -> None:
    """Refuse weights of another model than ``model``: a file of another kind, or the name of another model's
    published weights (a name of this model's, and "DEFAULT", are looked up by its kind)."""
    wanted = kind_of_model(model)
    if not is_weights_name(weights):
        found = kind_of_file(weights)
        if found is not wanted:
            raise WrongKind(str(weights), found, wanted)
        return
    entry = next((entry for entry in published_weights() if entry.name == str(weights)), None)
    if entry is not None and kind_of_model(entry.model) is not wanted:
        raise ValueError(f"{weights} are weights of {entry.model}, not of {model}: create {entry.model} instead")


def published_weights() -> list[PublishedWeights]:
    """Every weights file known by name, of every kind."""
    return [entry for candidate in kinds() for entry in candidate.published]


def published_entry(name: str | Path) -> PublishedWeights:
    """The published weights called ``name``, or one line listing the names there are."""
    entry = next((entry for entry in published_weights() if entry.name == str(name)), None)
    if entry is None:
        known = ", ".join(entry.name for entry in published_weights())
        raise ValueError(f"{name}: no such file, nor published weights of that name ({known})")
    return entry


def list_models(pattern: str = "*", pretrained: bool = False) -> list[str]:
    """Registered model names, of every kind, or the names of published weights.

    Args:
        pattern: a shell-style pattern the names must match (``"mobilenet_v2_*"``).
        pretrained: list the names of the published weights instead (``"mobilenet_v2_100.tv2_in1k"``), as
            ``create_model(model, weights=name)`` takes them.

    Returns:
        The names, sorted.
    """
    names = (entry.name for entry in published_weights()) if pretrained else (n for k in kinds() for n in k.models)
    return sorted(name for name in names if fnmatch.fnmatch(name, pattern))


def create_model(
    name: str,
    weights: str | Path | None = None,
    features_only: bool = False,
    out_indices: tuple[int, ...] | None = None,
    feature_location: FeatureLocation = "bottleneck",
    pretrained: bool = False,
    progress: bool = True,
    **overrides: Any,
) -> nn.Module:
    """Build a registered model of any kind, with any field of its config overridden.

    Args:
        name: a registered model name (``list_models()``): a classifier (``"mobilenet_v2_100"``), a segmenter
            (``"deeplabv3_mobilenet_v2"``), a detector (``"ssdlite_mobilenet_v2"``), or a plugin's.
        weights: a weights file of the model's kind (our safetensors, a torchvision/timm ``.pth`` state dict, a
            TFLite file, ...), whose architecture settings are used and its tensors loaded, checked key by key; or
            the name of published weights (``list_models(pretrained=True)``, or ``"DEFAULT"``), fetched into the
            cache once and checked against its sha256, with its preprocessing.
        features_only: return a classifier's feature maps (:class:`~mobilenet.nn.features.MobileNetFeatures`)
            instead of logits, at ``out_indices`` of the taps of ``feature_location`` ("bottleneck": block outputs;
            "expansion": inside blocks, as SSDLite reads them).
        out_indices: which taps ``features_only`` returns (None: all).
        feature_location: where the taps are.
        pretrained: ``weights="DEFAULT"`` when no weights are given.
        progress: show the download's progress.
        **overrides: fields of the kind's config (``width_mult``, ``num_classes``, ``input_size``, ...).

    Returns:
        The model, in training mode as PyTorch builds modules.
    """
    kind = kind_of_model(name)
    if pretrained and weights is None:
        weights = "DEFAULT"
    if weights is not None:
        check_weights(weights, name)
    model = kind.call("create", name, weights, progress=progress, **overrides)
    if not features_only:
        return model
    from mobilenet.nn.features import MobileNetFeatures
    from mobilenet.nn.model import MobileNet

    if not isinstance(model, MobileNet):
        raise ValueError(f"{name} is a {kind.name} model: features_only gives the feature maps of a MobileNet")
    return MobileNetFeatures(model, out_indices, feature_location)


def load(weights: str | Path, **overrides: Any) -> nn.Module:
    """The model a weights file (or the name of published weights) holds, whatever its kind.

    Args:
        weights: any file a registered kind reads (its content says which), or a published weights name.
        **overrides: config fields that keep the weights' shapes (``input_size``, ``output_stride``, ...).

    Returns:
        The model with its class names and preprocessing.
    """
    if is_weights_name(weights):
        return create_model(published_entry(weights).model, weights, **overrides)
    return kind_of_file(weights).call("load", weights, **overrides)


def verify(weights: str | Path, images: Any = None, **overrides: Any) -> Any:
    """What a weights file is, and how our model agrees with the framework that wrote it, by the kind the file holds
    (a :class:`~mobilenet.weights.verify.Verification`; ``images``: a folder or image files, None: built-in ones).
    ``overrides``: conventions to read it with instead of its own (``padding``, ``bn_eps``)."""
    found = kind_of_file(weights)
    if found.verify is None:
        verified = ", ".join(kind.name for kind in kinds() if kind.verify is not None)
        raise ValueError(f"{weights} holds a {found.name} model: verify reads {verified} files so far")
    return found.call("verify", weights, images, **overrides)


def load_deployed(
    weights: str | Path,
    backend: str = "auto",
    precision: str | None = None,
    calibration: ImageSource | None = None,
    threads: int | None = None,
    images: int | None = None,
    emulate_int8: bool | None = None,
) -> Deployed:
    """A weights file (or published name) of any kind ready for inference, or an OpenVINO IR that mobilenet wrote.

    Args:
        weights: what :func:`load` takes, or an OpenVINO ``.xml`` (the int8 model of a quantization-aware run,
            say), which runs on OpenVINO as it was saved.
        backend: as :func:`~mobilenet.inference.deploy.deploy` takes it.
        precision: "fp32" (None), "bf16" or "int8".
        calibration: int8's calibration images.
        threads: the backend's thread count (None: its default).
        images: how many images it will run on: lets ``backend="auto"`` skip an export that would not pay off
            (see :func:`~mobilenet.inference.backends.backend_for`).
        emulate_int8: a quantized TFLite file runs as Google's runtime computes it (None, True: every activation
            rounded to the file's grid, on the "torch" or "eager" backend) or on its weights in float (False), which
            any backend and precision run. Other files are float: None and False alike.

    Returns:
        A :class:`~mobilenet.inference.deploy.Deployed` (a detector's: a ``DeployedDetector``).
    """
    from mobilenet.inference.deploy import deploy, deploy_file
    from mobilenet.weights.download import fetch
    from mobilenet.weights.tflite import is_quantized_tflite

    found = None if is_weights_name(weights) else kind_of_file(weights)  # its kind read once, not at each step
    if emulate_int8 is None:  # published weights: their file in the cache, where loading them finds it again
        emulate_int8 = is_quantized_tflite(weights if found else fetch(published_entry(weights)))
    if emulate_int8:
        if backend not in ("auto", "torch", "eager") or precision not in (None, "fp32"):
            raise ValueError(
                f"{weights} is an int8 TFLite file, run as Google's runtime computes it (by PyTorch, in fp32): run "
                "its weights in float for another backend or precision (--float; emulate_int8=False)"
            )
        model = load(weights, emulate_int8=True) if found is None else found.call("load", weights, emulate_int8=True)
        return deploy(model, "eager" if backend == "eager" else "torch", "fp32", None, threads)

    def read(path: str | Path) -> nn.Module:
        return load(path) if found is None else found.call("load", path)

    config = None if found is None else found.config
    return deploy_file(weights, read, config, backend, precision, calibration, threads, images)
