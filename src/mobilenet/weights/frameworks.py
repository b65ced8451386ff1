"""The frameworks a classifier's weights file comes from, run on image files as each runs it: LiteRT for a TFLite
file (fed as its input quantization says), transformers for its folders (with its own image processor), timm and
torchvision for their state dicts. What :mod:`mobilenet.weights.verify` compares our model with."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from mobilenet.data.images import image_batch
from mobilenet.nn.model import MobileNet
from mobilenet.nn.variants import model_name
from mobilenet.weights.foreign import state_dict_file
from mobilenet.weights.huggingface import PROCESSOR_FILE

Runner = Callable[[list[Path]], np.ndarray]  # image files -> logits, with the framework's own preprocessing


def reference_for(path: Path, fmt: str, model: MobileNet) -> tuple[Runner | None, str | None, str | None]:
    """The framework the file came from, as a function of pixels to logits (in our class order), with its name; or
    why there is none."""
    needs = {"tflite": "ai_edge_litert", "transformers": "transformers", "timm": "timm", "torchvision": "torchvision"}
    if fmt not in needs:
        return None, None, "the file is mobilenet's own: it was written by this library"
    try:
        module = importlib.import_module(needs[fmt])
        runner = REFERENCES[fmt](module, path, model)
    except Exception as error:  # not installed, installed but broken on this torch, or no model of the file's
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        return None, None, f"{needs[fmt]} cannot run the file here ({first}): install it to compare with {fmt}"
    package = {"ai_edge_litert": "ai-edge-litert"}.get(needs[fmt], needs[fmt])
    return runner, f"{'LiteRT' if fmt == 'tflite' else needs[fmt]} {metadata.version(package)}", None


def litert_runner(_module: Any, path: Path, model: MobileNet) -> Runner:
    from mobilenet.weights.tflite import litert_logits

    def run(files: list[Path]) -> np.ndarray:  # fed as the file's input quantization says
        return litert_logits(path, files, drop_background=model.num_classes == 1000).astype(np.float32)

    return run


def transformers_runner(module: Any, path: Path, model: MobileNet) -> Runner:
    folder = path if path.is_dir() else path.parent
    reference = module.AutoModelForImageClassification.from_pretrained(folder).eval()
    has_processor = (folder / PROCESSOR_FILE).is_file()  # without one, transformers' user preprocesses as we do
    processor = module.AutoImageProcessor.from_pretrained(folder, backend="pil") if has_processor else None

    def pixels(files: list[Path]) -> torch.Tensor:
        if processor is None:
            return image_batch(files, model.preprocessing)
        images = [Image.open(file).convert("RGB") for file in files]
        return processor(images=images, return_tensors="pt")["pixel_values"]

    def run(files: list[Path]) -> np.ndarray:
        with torch.no_grad():
            logits = reference(pixel_values=pixels(files)).logits.numpy()
        return logits[:, 1:] if logits.shape[1] == model.num_classes + 1 else logits

    return run


def state_dict_runner(build: Callable[[Any, MobileNet], torch.nn.Module]) -> Callable[..., Runner]:
    """A runner for a state dict file: the framework's own model, built by ``build``, loading the file's tensors."""

    def make(module: Any, path: Path, model: MobileNet) -> Runner:
        reference = build(module, model)
        reference.load_state_dict(state_dict_file(path))
        reference.eval()

        def run(files: list[Path]) -> np.ndarray:  # the file says nothing of its preprocessing: ours, as read
            with torch.no_grad():
                return reference(image_batch(files, model.preprocessing)).numpy()

        return run

    return make


def timm_model(module: Any, model: MobileNet) -> torch.nn.Module:
    name = model_name(model.config).replace("mobilenet_v", "mobilenetv")  # ours "mobilenet_v2_110d": "mobilenetv2_110d"
    return module.create_model(name, num_classes=model.config.num_classes)


def torchvision_model(module: Any, model: MobileNet) -> torch.nn.Module:
    config = model.config
    if config.arch != "mobilenet_v2":
        raise ValueError(f"torchvision has no {config.arch}: a torchvision state dict holds a mobilenet_v2")
    return module.models.mobilenet_v2(width_mult=config.width_mult, num_classes=config.num_classes)


REFERENCES = {
    "tflite": litert_runner,
    "transformers": transformers_runner,
    "timm": state_dict_runner(timm_model),
    "torchvision": state_dict_runner(torchvision_model),
}
