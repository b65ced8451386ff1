"""Any supported weights file into a model: the format is told by the file, the architecture by its metadata."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import torch

from mobilenet.nn.config import ModelConfig
from mobilenet.nn.model import MobileNet
from mobilenet.nn.variants import model_name
from mobilenet.utils.files import nonempty_lines
from mobilenet.weights.foreign import is_timm, read_torch, timm_checkpoint
from mobilenet.weights.format import MOBILENET, Checkpoint, ModelInfo, read_safetensors
from mobilenet.weights.huggingface import architecture, read_transformers
from mobilenet.weights.keras import is_keras, read_keras
from mobilenet.weights.relabel import NewLabels, needs_new_layer, refuse_merges, relabel
from mobilenet.weights.tf_slim import is_tf_slim_file, read_tf_slim


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read any supported weights file: ``.safetensors``, ``.tflite``, Keras's ``.h5``/``.keras``, a classifier's
    ONNX graph, TF-slim's checkpoints and frozen graphs, a PyTorch state dict, or a Hugging Face transformers folder
    of a MobileNet classifier."""
    path = Path(path)
    if architecture(path) is not None:  # a transformers folder, or the weights file in one: its config.json says
        return read_transformers(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder: pass the weights file inside it (best.safetensors, say)")
    if is_tf_slim_file(path):  # a TensorFlow checkpoint (by its prefix, .index or a data shard), a frozen graph
        return read_tf_slim(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        checkpoint = read_safetensors(path)
        # timm's Hub files (model.safetensors beside a config.json) carry timm's keys and no metadata of ours.
        return timm_checkpoint(checkpoint.state_dict, path) if is_timm(checkpoint.state_dict) else checkpoint
    if path.suffix == ".tflite":
        from mobilenet.weights.tflite import import_tflite

        model, preprocessing = import_tflite(path)
        info = ModelInfo("mobilenet", model.config, tflite_labels(path, model.config), preprocessing)
        return Checkpoint(model.state_dict(), info)
    if is_keras(path):
        return read_keras(path)
    if path.suffix == ".onnx":
        from mobilenet.weights.onnx_weights import read_onnx

        return read_onnx(path)
    if path.suffix == ".xml":
        raise ValueError(f"{path} is an inference graph, not weights: pass the .safetensors it was exported from")
    return read_torch(path)


def tflite_labels(path: Path, config: ModelConfig) -> list[str] | None:
    """Class names from the label file a TFLite file carries (its standard metadata's), or else from a
    ``*labels*.txt`` beside it (Coral's layout), if one fits.

    A file with one line more than the classes starts with TensorFlow's "background", dropped here.
    """
    from mobilenet.weights.tflite import embedded_labels

    beside = sorted(path.parent.glob("*labels*.txt"))
    lists = [embedded_labels(path), *(nonempty_lines(f.read_text()) for f in beside)]
    for names in filter(None, lists):
        if len(names) == config.num_classes + 1:
            return names[1:]
        if len(names) == config.num_classes:
            return names
    return None


def require_mobilenet(info: ModelInfo, source: str) -> None:
    """One clear line when a file holds another kind of model than a MobileNet classifier or backbone."""
    if info.kind not in (None, MOBILENET):
        raise ValueError(f"{source} holds a {info.kind!r} model, not a MobileNet classifier or backbone")


def describe(config: ModelConfig) -> str:
    return f"{config.arch} width {config.width_mult:g} with {config.num_classes} classes"


def load_state_dict(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
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
        raise ValueError(f"{source} does not fit {describe(model.config)}: {'; '.join(problems)}{hint(state_dict)}")
    model.load_state_dict(state_dict, strict=True)


def hint(state_dict: dict[str, torch.Tensor]) -> str:
    """What the checkpoint itself looks like, so the error can say which model to build."""
    stem, classifier = state_dict.get("features.0.0.weight"), state_dict.get("classifier.1.weight")
    if stem is None:
        return ""
    blocks = {k.split(".")[1] for k in state_dict if k.startswith("features.")}
    arch = "mobilenet_v2" if len(blocks) == 19 else "mobilenet_v1" if len(blocks) == 14 else "unknown"
    classes = f", {classifier.shape[0]} classes" if classifier is not None else ""
    return f" (the file looks like {arch} with a {stem.shape[0]}-channel stem{classes})"


def load_task_model(path: str | Path, model_type: type, refusal: str, **overrides: Any) -> Any:
    """A task model (a detector, a DeepLab) from our file of its kind (``model_type.kind``): ``model_type(config)``
    built from the file's config (``model_type.config_type``), ``overrides`` applied, loaded strictly. A classifier's
    file is refused with ``refusal``, another kind's in one line."""
    checkpoint = read_checkpoint(path)
    if checkpoint.info.kind in (None, MOBILENET):
        raise ValueError(refusal)
    if checkpoint.info.kind != model_type.kind:
        raise ValueError(f"{path} holds a {checkpoint.info.kind!r} model, not a {model_type.kind!r} one")
    config_type = model_type.config_type
    known = {f.name for f in fields(config_type)}
    config = config_type(**{k: v for k, v in (checkpoint.info.config_fields or {}).items() if k in known})
    model = model_type(replace(config, **overrides))
    load_state_dict(model, checkpoint.state_dict, source=str(path))
    model.class_names = checkpoint.class_names
    if checkpoint.preprocessing is not None:
        model.preprocessing = checkpoint.preprocessing
    return model


def load_task_file(
    path: str | Path,
    model_type: type,
    importers: Mapping[str, Callable[[Path, bool], Any]],
    owns: Callable[[Path], bool],
    refusal: str,
    emulate_int8: bool = False,
    **overrides: Any,
) -> Any:
    """A task model from a file: one of the formats its package imports (by suffix: Google's TFLite files, frozen
    graphs; ``owns`` tells whether such a file holds this kind), or our safetensors of its kind. A file of another
    kind is refused with ``refusal``. ``emulate_int8`` (a quantized TFLite file) runs the file as Google's runtime
    does (see :mod:`mobilenet.weights.int8`); ``overrides`` change config fields that keep the weights' shapes."""
    path = Path(path)
    if emulate_int8:
        check_emulation(path, overrides)
    importer = importers.get(path.suffix)
    if importer is not None and path.is_file():
        if not owns(path):
            raise ValueError(refusal)
        model = importer(path, emulate_int8)
        return rebuilt(model, overrides) if overrides else model
    return load_task_model(path, model_type, refusal, **overrides)


def check_emulation(path: Path, overrides: dict[str, Any]) -> None:
    """``emulate_int8`` runs a TFLite file's own integer grids: refused for other files, and with config changes."""
    if path.suffix != ".tflite":
        raise ValueError(f"{path} is float weights: emulate_int8 applies to quantized .tflite files")
    if overrides:
        raise ValueError("emulate_int8 runs the file as it is: drop the config overrides")


def start_from(
    path: str | Path,
    model_type: type,
    load: Callable[..., Any],
    owns: Callable[[Path], bool],
    labels: NewLabels,
    overrides: dict[str, Any],
) -> tuple[Any, dict[str, list[str]] | None]:
    """Fine-tuning's start from a weights file: a model of the task's own kind (``owns`` tells) as ``load`` reads it,
    with a new last layer where its classes are not ``labels.classes`` (started as :func:`relabel` says); or else a
    classifier (any format the library reads), whose backbone gets a new head (see :func:`task_model_from_classifier`).
    Returns the model and, where its last layer is new, where each class's row started (:func:`relabel`)."""
    path = Path(path)
    if not owns(path):
        refuse_merges(labels, f"{path} is a classifier, whose backbone gets a new head")
        return task_model_from_classifier(path, model_type, num_classes=len(labels.classes), **overrides), None
    model = load(path, **overrides)
    if needs_new_layer(model, labels.classes):
        return model, relabel(model, labels)
    refuse_merges(labels, f"{path} predicts the data's classes")
    return model, None


def rebuilt(model: Any, overrides: dict[str, Any]) -> Any:
    """The same weights in a task model whose config differs in shape-keeping fields (input size, output stride)."""
    new = type(model)(replace(model.config, **overrides))
    new.load_state_dict(model.state_dict())
    new.class_names = model.class_names
    new.preprocessing = replace(model.preprocessing, input_size=new.config.input_size)
    return new


# What a task model's config takes from the classifier its backbone comes from (those fields its config has).
BACKBONE_FIELDS = ("arch", "width_mult", "divisible_by", "in_chans", "padding", "bn_eps", "bn_momentum")


def task_model_from_classifier(path: str | Path, model_type: type, **overrides: Any) -> Any:
    """A task model (``model_type``: a DeepLab, a detector) on the backbone of a MobileNet classifier file (any the
    library loads): fine-tuning's start. The backbone's architecture, width, padding and BatchNorm are the file's;
    the head is new, and so is anything in ``overrides``; the classifier (and what the head does not read) is left."""
    checkpoint = read_classifier(path)
    source = checkpoint.config or ModelConfig()
    known = {f.name for f in fields(model_type.config_type)}
    taken = {name: getattr(source, name) for name in BACKBONE_FIELDS if name in known}
    model = model_type(model_type.config_type(**taken, **overrides))
    config = model.config
    load_backbone(model.backbone, checkpoint, str(path), f"{config.arch} width {config.width_mult:g}")
    if checkpoint.preprocessing is not None:
        model.preprocessing = replace(checkpoint.preprocessing, input_size=config.input_size, crop_pct=1.0)
    return model


def read_classifier(path: str | Path) -> Checkpoint:
    """A MobileNet classifier or backbone file (any format ``read_checkpoint`` reads), refusing other kinds."""
    checkpoint = read_checkpoint(path)
    require_mobilenet(checkpoint.info, str(path))
    return checkpoint


def load_backbone(backbone: torch.nn.Module, checkpoint: Checkpoint, source: str, what: str) -> None:
    """Load a classifier's tensors into a head's backbone (``features.*`` keys); its classifier is left behind."""
    own = backbone.state_dict()
    found = {k: v for k, v in checkpoint.state_dict.items() if k in own}
    wrong = [k for k, v in found.items() if v.shape != own[k].shape]
    if len(found) < len(own) or wrong:
        first = wrong[0] if wrong else next(k for k in own if k not in found)
        raise ValueError(
            f"{source} does not hold the backbone of {what} "
            f"({len(own) - len(found)} missing, {len(wrong)} of other shapes; first {first})"
        )
    backbone.load_state_dict(found)


def load_model(
    path: str | Path, expect: ModelConfig | None = None, emulate_int8: bool = False, **overrides: Any
) -> MobileNet:
    """Build the MobileNet classifier (or backbone) a weights file describes, and load it.

    Files that carry their config (ours, TFLite) decide the architecture. If ``expect`` names another
    architecture or width than the file holds, that is an error rather than a silent swap.

    Args:
        path: our safetensors, a torchvision or timm state dict, or a TFLite classifier.
        expect: the architecture of a bare state dict (MobileNetV2 1.0 by default).
        emulate_int8: (a quantized TFLite file) round every activation to the file's integer grid, as Google's
            runtime computes (see :mod:`mobilenet.weights.int8`), rather than the float model its weights give.
        **overrides: fields that keep the weights' shapes (``output_stride``, ``dropout``, ...).

    Returns:
        The model with the file's class names and preprocessing, where it has them.
    """
    if emulate_int8:
        check_emulation(Path(path), overrides)
    checkpoint = read_checkpoint(path)
    require_mobilenet(checkpoint.info, str(path))
    config = checkpoint.config or expect or ModelConfig()
    file_shape = (config.arch, config.width_mult)
    if expect is not None and checkpoint.config is not None and (expect.arch, expect.width_mult) != file_shape:
        raise ValueError(
            f"{path} holds {describe(config)}, not {expect.arch} width {expect.width_mult:g}: "
            f"create the model named for the file ({model_name(config)}), or leave out the model name"
        )
    config = replace(config, **overrides)
    model = MobileNet(config)
    load_state_dict(model, checkpoint.state_dict, source=str(path))
    model.class_names = checkpoint.class_names
    if checkpoint.preprocessing is not None:
        model.preprocessing = checkpoint.preprocessing
    if emulate_int8:
        from mobilenet.weights.tflite import read_tflite, round_classifier

        round_classifier(model, read_tflite(path))
    return model
