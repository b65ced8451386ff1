"""Other libraries' files: torchvision and timm state dicts (timm's Hub safetensors too), read without running code."""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import replace
from pathlib import Path

import torch

from mobilenet.nn.config import ModelConfig
from mobilenet.nn.preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing
from mobilenet.nn.variants import MODELS
from mobilenet.weights.format import Checkpoint, ModelInfo, safetensors_tensors

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


def read_torch(path: Path) -> Checkpoint:
    """A PyTorch state dict, unpickled with ``weights_only=True``: tensors and plain containers, never code."""
    data = torch_state_dict(path)
    if is_timm(data):
        return timm_checkpoint(data, path)
    return Checkpoint(data)


def state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    """A state dict file's tensors under the names it was saved with: safetensors, or a PyTorch file."""
    return safetensors_tensors(path) if path.suffix == ".safetensors" else torch_state_dict(path)


def torch_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A PyTorch file's state dict under the names it was saved with (out of a training checkpoint's wrapper, and
    DistributedDataParallel's ``module.`` prefix), unpickled with ``weights_only=True``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PyTorch's notes on pickle protocols: the error below says it all
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a pickle that would run code, a truncated file, or no PyTorch file at all
        unsafe = "weights_only" in str(error) or "Unsupported global" in str(error)
        reason = "it holds objects other than tensors, never unpickled here" if unsafe else "not a PyTorch file"
        raise ValueError(
            f"cannot read {path} as a PyTorch state dict ({reason}): mobilenet reads safetensors, .pth state dicts "
            "of tensors and .tflite files"
        ) from None
    for wrapper in ("state_dict", "model", "model_state_dict"):
        if isinstance(data, dict) and isinstance(data.get(wrapper), dict):
            data = data[wrapper]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise ValueError(f"{path} holds no state dict (a dict of tensors)")
    return {k.removeprefix("module."): v for k, v in data.items()}  # saved from DistributedDataParallel


def is_timm(state_dict: dict[str, torch.Tensor]) -> bool:
    return "conv_stem.weight" in state_dict


def timm_checkpoint(state_dict: dict[str, torch.Tensor], path: Path) -> Checkpoint:
    """A timm state dict under our keys, with what timm's Hub ``config.json`` beside it says, if there is one.

    Without that file: timm's evaluation settings for its MobileNet weights (bicubic; the size is the model's).
    """
    preprocessing, config = Preprocessing(interpolation="bicubic"), None
    hub_config = path.parent / "config.json"
    if hub_config.is_file():
        try:
            settings = json.loads(hub_config.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ValueError(f"{hub_config} beside {path.name} is not timm's JSON config: fix or remove it") from None
        pretrained = settings.get("pretrained_cfg", {})
        size = pretrained.get("test_input_size", pretrained.get("input_size", (3, 224, 224)))[-1]
        preprocessing = Preprocessing(
            input_size=size,
            crop_pct=pretrained.get("test_crop_pct", pretrained.get("crop_pct", 0.875)),
            mean=tuple(pretrained.get("mean", IMAGENET_MEAN)),
            std=tuple(pretrained.get("std", IMAGENET_STD)),
            interpolation=pretrained.get("interpolation", "bicubic"),
        )
        # timm's "mobilenetv2_110d" is our "mobilenet_v2_110d", its "mobilenetv1_125" our V1 at width 1.25; other
        # timm architectures are not ours to build.
        if match := re.fullmatch(r"mobilenetv([12])_(\d{3})([dh]?)", settings.get("architecture", "")):
            arch, name = f"mobilenet_v{match[1]}", f"mobilenet_v{match[1]}_{match[2]}{match[3]}"
            base = MODELS.get(name, ModelConfig(arch=arch, width_mult=int(match[2]) / 100))
            config = replace(base, num_classes=settings.get("num_classes", 1000), input_size=size)
    return Checkpoint(timm_to_torchvision(state_dict), ModelInfo(config=config, preprocessing=preprocessing))
