"""Hugging Face transformers' MobileNets: a folder of ``MobileNetV1ForImageClassification`` or
``MobileNetV2ForImageClassification`` (the layout of ``google/mobilenet_v2_1.0_224``), read into our model and
written back so that transformers loads it.

transformers holds Google's TF-slim weights under its own names (``mobilenet_v2.layer.3.expand_1x1.convolution``)
with a ``config.json`` (``depth_multiplier``, ``tf_padding``, ``layer_norm_eps``, ``id2label``) and a
``preprocessor_config.json``. Its layers are ours, in the same order; the conventions are TensorFlow's: "SAME"
padding, BatchNorm eps 1e-3, a 1001st class ("background") first, pixels scaled to [-1, 1]. Read without
transformers installed, and without running the pickle of a ``pytorch_model.bin``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save

from mobilenet.nn.config import MOBILENET, ModelConfig
from mobilenet.nn.model import MobileNet
from mobilenet.nn.preprocessing import TF_MEAN, TF_STD, Preprocessing
from mobilenet.utils.files import atomic_text, atomic_write
from mobilenet.weights.foreign import state_dict_file
from mobilenet.weights.format import Checkpoint, ModelInfo

CONFIG_FILE, PROCESSOR_FILE = "config.json", "preprocessor_config.json"
WEIGHTS_FILES = ("model.safetensors", "pytorch_model.bin")  # transformers' own order of preference
BACKGROUND = "background"


@dataclass(frozen=True)
class Layout:
    """One transformers architecture: its names, and how many blocks its backbone has (the papers' tables)."""

    arch: str  # ours
    model_type: str  # transformers' ``config.model_type``, also the prefix of its backbone's keys
    classifier: str  # transformers' ``config.architectures[0]``
    processor: str
    blocks: int  # V2: 16 bottlenecks after the stem's; V1: 13 depthwise-separable blocks


LAYOUTS = (
    Layout("mobilenet_v2", "mobilenet_v2", "MobileNetV2ForImageClassification", "MobileNetV2ImageProcessor", 16),
    Layout("mobilenet_v1", "mobilenet_v1", "MobileNetV1ForImageClassification", "MobileNetV1ImageProcessor", 13),
)
MODEL_TYPES = {layout.model_type: layout for layout in LAYOUTS}
CLASSIFIERS = {layout.classifier for layout in LAYOUTS}
# PIL's resampling codes, as transformers' processors save them.
RESAMPLE = {0: "nearest", 2: "bilinear", 3: "bicubic"}


def layer_names(layout: Layout) -> dict[str, tuple[str, str]]:
    """transformers' layer names -> ours (torchvision's), as (the convolution's, its BatchNorm's)."""
    if layout.arch == "mobilenet_v1":  # layer 2j is block j's depthwise conv, layer 2j + 1 its pointwise one
        names = {"conv_stem": ("features.0.0", "features.0.1")}
        for j in range(layout.blocks):
            block = f"features.{j + 1}.conv"
            names[f"layer.{2 * j}"] = (f"{block}.0.0", f"{block}.0.1")
            names[f"layer.{2 * j + 1}"] = (f"{block}.1", f"{block}.2")
        return names
    names = {  # the stem holds the first bottleneck (expansion 1: depthwise, then projection)
        "conv_stem.first_conv": ("features.0.0", "features.0.1"),
        "conv_stem.conv_3x3": ("features.1.conv.0.0", "features.1.conv.0.1"),
        "conv_stem.reduce_1x1": ("features.1.conv.1", "features.1.conv.2"),
        "conv_1x1": (f"features.{layout.blocks + 2}.0", f"features.{layout.blocks + 2}.1"),
    }
    for i in range(layout.blocks):
        block = f"features.{i + 2}.conv"
        names[f"layer.{i}.expand_1x1"] = (f"{block}.0.0", f"{block}.0.1")
        names[f"layer.{i}.conv_3x3"] = (f"{block}.1.0", f"{block}.1.1")
        names[f"layer.{i}.reduce_1x1"] = (f"{block}.2", f"{block}.3")
    return names


def key_names(layout: Layout) -> dict[str, str]:
    """Every key prefix of transformers' state dict -> ours."""
    keys = {"classifier": "classifier.1"}
    for layer, (conv, norm) in layer_names(layout).items():
        keys[f"{layout.model_type}.{layer}.convolution"] = conv
        keys[f"{layout.model_type}.{layer}.normalization"] = norm
    return keys


def renamed(state_dict: dict[str, torch.Tensor], names: dict[str, str], source: str) -> dict[str, torch.Tensor]:
    """``state_dict`` with each key's module prefix replaced by ``names``; a key it does not know is an error."""
    out = {}
    for key, value in state_dict.items():
        module, _, tensor = key.rpartition(".")
        if module not in names:
            raise ValueError(f"{source} has a tensor {key!r} that no MobileNet layer of transformers has")
        out[f"{names[module]}.{tensor}"] = value
    return out


def read_settings(folder: Path) -> dict[str, Any] | None:
    """transformers' ``config.json`` in ``folder`` when it describes a MobileNet (a classifier, a DeepLab); None
    otherwise."""
    path = folder / CONFIG_FILE
    if not path.is_file():
        return None
    try:
        settings = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None  # not transformers' file: the other readers say what they make of the folder
    return settings if isinstance(settings, dict) and settings.get("model_type") in MODEL_TYPES else None


@dataclass(frozen=True)
class Folder:
    """A transformers MobileNet folder: where it is, its ``config.json``, and the layout and architecture it names."""

    path: Path
    settings: dict[str, Any]
    layout: Layout
    architecture: str  # ``MobileNetV2ForImageClassification``, ``MobileNetV2ForSemanticSegmentation``, ...


def read_folder(path: str | Path) -> Folder | None:
    """The transformers MobileNet folder ``path`` is, or holds as its weights file; None where it is no such thing."""
    path = Path(path)
    if not (path.is_dir() or path.name in WEIGHTS_FILES):
        return None
    folder = path if path.is_dir() else path.parent
    settings = read_settings(folder)
    if settings is None:
        return None
    layout = MODEL_TYPES[settings["model_type"]]
    return Folder(folder, settings, layout, (settings.get("architectures") or [layout.classifier])[0])


def architecture(path: str | Path) -> str | None:
    """transformers' architecture of a MobileNet folder, or of a weights file in one; None: no such thing."""
    found = read_folder(path)
    return None if found is None else found.architecture


def is_transformers(path: str | Path) -> bool:
    """Whether ``path`` is a transformers folder of a MobileNet classifier, or a weights file in one."""
    return architecture(path) in CLASSIFIERS


def weights_file(path: Path) -> Path:
    """The weights of a transformers folder (``path`` itself where it is the file)."""
    if path.is_file():
        return path
    found = next((path / name for name in WEIGHTS_FILES if (path / name).is_file()), None)
    if found is None:
        raise FileNotFoundError(f"{path} holds no {' or '.join(WEIGHTS_FILES)}: download the weights beside it")
    return found


def read_transformers(path: str | Path) -> Checkpoint:
    """A transformers MobileNet classifier (its folder, or the weights file in it) as our tensors and settings."""
    found = read_folder(path)
    if found is None:
        raise ValueError(f"{path} is no transformers MobileNet: its folder holds no config.json of one")
    folder, settings, layout = found.path, found.settings, found.layout
    if found.architecture != layout.classifier:
        raise ValueError(
            f"{folder} holds transformers' {found.architecture}, not a classifier: load it with "
            "mobilenet.registry.load, or run it with the command of its task"
        )
    common = backbone_settings(settings, str(folder / CONFIG_FILE))
    weights = weights_file(Path(path))
    state_dict = renamed(state_dict_file(weights), key_names(layout), str(weights))
    names = class_names(settings)
    if names and names[0] == BACKGROUND and len(names) == state_dict["classifier.1.weight"].shape[0]:
        names = names[1:]  # TensorFlow's 1001st class, first: dropped, so that class i is ImageNet's i
        state_dict["classifier.1.weight"] = state_dict["classifier.1.weight"][1:]
        state_dict["classifier.1.bias"] = state_dict["classifier.1.bias"][1:]
    config = ModelConfig(arch=layout.arch, num_classes=len(state_dict["classifier.1.weight"]), **common)
    default = Preprocessing(input_size=config.input_size, mean=TF_MEAN, std=TF_STD)  # TF-slim's evaluation crop
    info = ModelInfo(MOBILENET, config, names, preprocessing(folder, default))
    return Checkpoint(state_dict, info)


def backbone_settings(settings: dict[str, Any], source: str) -> dict[str, Any]:
    """The fields of our configs (a classifier's, a DeepLab's) that transformers' settings give, or one line naming
    the setting we do not build."""
    unsupported = {
        "first_layer_is_expansion": (True, "a first bottleneck that expands"),
        "finegrained_output": (True, "a last conv scaled below 1280 channels"),
        "hidden_act": ("relu6", f"the activation {settings.get('hidden_act')!r}"),
        "num_channels": (3, f"{settings.get('num_channels')}-channel input"),
    }
    for key, (ours, what) in unsupported.items():
        if key in settings and settings[key] != ours and (key != "finegrained_output" or width(settings) < 1):
            raise ValueError(f"{source} asks for {what} ({key}={settings[key]!r}), which mobilenet does not build")
    return {
        "width_mult": width(settings),
        "divisible_by": settings.get("depth_divisible_by", 8),
        "input_size": settings.get("image_size", 224),
        "padding": "tf_same" if settings.get("tf_padding", True) else "symmetric",
        "bn_eps": settings.get("layer_norm_eps", 1e-3),
        "output_stride": settings.get("output_stride", 32),
    }


def width(settings: dict[str, Any]) -> float:
    return float(settings.get("depth_multiplier", 1.0))


def class_names(settings: dict[str, Any]) -> list[str] | None:
    """``id2label`` in class order; None where it is transformers' placeholder ("LABEL_0", ...)."""
    labels = settings.get("id2label") or {}
    names = [labels[key] for key in sorted(labels, key=int)]
    return None if not names or all(name == f"LABEL_{i}" for i, name in enumerate(names)) else names


def preprocessing(folder: Path, default: Preprocessing) -> Preprocessing:
    """What ``preprocessor_config.json`` says (short side resized, center crop, normalisation); ``default`` without
    one."""
    path = folder / PROCESSOR_FILE
    if not path.is_file():
        return default
    input_size = default.input_size
    try:
        settings = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ValueError(f"{path} is not transformers' JSON preprocessor config: fix or remove it") from None
    crop = settings.get("crop_size", {}).get("height", input_size) if settings.get("do_center_crop", True) else None
    size = settings.get("size", {})
    short = size.get("shortest_edge", size.get("height", round(input_size / 0.875)))
    crop = crop or short
    return Preprocessing(
        input_size=crop,
        crop_pct=crop / short,
        mean=tuple(settings.get("image_mean", TF_MEAN)),
        std=tuple(settings.get("image_std", TF_STD)),
        interpolation=RESAMPLE.get(settings.get("resample", 2), "bilinear"),
    )


def save_transformers(model: MobileNet, folder: str | Path) -> Path:
    """Write a MobileNet classifier as a transformers folder (``config.json``, ``preprocessor_config.json``,
    ``model.safetensors``) that ``transformers.AutoModelForImageClassification.from_pretrained`` loads with the same
    logits. Only what transformers builds can go: a ReLU6 classifier of the papers' layout, 3-channel input."""
    config, folder = model.config, Path(folder)
    layout = next((layout for layout in LAYOUTS if layout.arch == config.arch), None)
    plain = ModelConfig(arch=config.arch, width_mult=config.width_mult, divisible_by=config.divisible_by)
    differs = [
        name
        for name in ("classifier", "activation", "linear_bottleneck", "shortcut", "small_input", "in_chans")
        if getattr(config, name) != getattr(plain, name)
    ]
    if layout is None or differs:
        what = config.arch if layout is None else f"{differs[0]}={getattr(config, differs[0])!r}"
        raise ValueError(f"transformers has no MobileNet with {what}: save it in mobilenet's format instead")
    names = model.class_names or [f"LABEL_{i}" for i in range(config.num_classes)]
    settings = {
        "architectures": [layout.classifier],
        "model_type": layout.model_type,
        "depth_multiplier": config.width_mult,
        "min_depth": 8,
        "image_size": config.input_size,
        "tf_padding": config.padding == "tf_same",
        "layer_norm_eps": config.bn_eps,
        "hidden_act": "relu6",
        "classifier_dropout_prob": config.dropout,  # a drop rate, as nn.Dropout takes it (not TF's keep rate)
        "num_channels": 3,
        "id2label": {str(i): name for i, name in enumerate(names)},
        "label2id": {name: i for i, name in enumerate(names)},
    }
    if layout.arch == "mobilenet_v2":
        settings |= {"depth_divisible_by": config.divisible_by, "output_stride": config.output_stride}
        settings |= {"finegrained_output": True, "first_layer_is_expansion": True, "expand_ratio": 6.0}
    pre = model.preprocessing
    if pre.resize != "short_side":  # transformers' processors resize the short side and crop, nothing else
        raise ValueError(
            f"transformers' {layout.processor} has no {pre.resize!r} resize: set the model's preprocessing to "
            "resize='short_side' before saving (mobilenet convert --resize short_side)"
        )
    processor = {
        "image_processor_type": layout.processor,
        "do_resize": True,
        "size": {"shortest_edge": pre.resize_size},
        "resample": next(code for code, name in RESAMPLE.items() if name == pre.interpolation),
        "do_center_crop": True,
        "crop_size": {"height": pre.input_size, "width": pre.input_size},
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": list(pre.mean),
        "image_std": list(pre.std),
    }
    ours = {value: key for key, value in key_names(layout).items()}
    tensors = renamed({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, ours, "the model")
    folder.mkdir(parents=True, exist_ok=True)
    data = save(tensors, metadata={"format": "pt"})  # transformers refuses safetensors without this key
    atomic_write(folder / WEIGHTS_FILES[0], lambda tmp: Path(tmp).write_bytes(data))
    atomic_text(folder / PROCESSOR_FILE, json.dumps(processor, indent=2) + "\n")
    atomic_text(folder / CONFIG_FILE, json.dumps(settings, indent=2) + "\n")
    return folder
