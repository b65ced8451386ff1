"""What a DeepLab file is, and whether our model segments as the framework that wrote it does: LiteRT for Google's
TFLite files (Coral's, 8-bit), transformers for its ``MobileNetV2ForSemanticSegmentation`` folders, TensorFlow for
DeepLab's frozen graphs (where it is installed beside). Agreement is
counted over pixels, on the same pixels fed to both; each convention is flipped in turn as for a classifier
(:mod:`mobilenet.weights.verify`)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mobilenet.data.images import image_batch, unnormalize
from mobilenet.segmentation.huggingface import is_transformers_deeplab
from mobilenet.segmentation.load import load_deeplab
from mobilenet.segmentation.model import DeepLabV3
from mobilenet.segmentation.tf_deeplab import is_tf_deeplab
from mobilenet.weights.frameworks import Runner, reference_for, tensorflow_graph
from mobilenet.weights.verify import ImageFiles, Verification, beside

FORMATS = {".tflite": "tflite", ".pb": "tf_graph"}
# A 513-pixel DeepLab costs some twenty classifiers an image: fewer built-in images are as telling, over pixels.
BUILT_IN_IMAGES = 4


def verify_deeplab(path: str | Path, images: ImageFiles = None, **overrides: Any) -> Verification:
    """Read a DeepLab file (Google's TFLite, a transformers folder, TensorFlow's, ours) and run it beside the
    framework it came from; ``overrides``: conventions to read it with instead of its own (``padding``, ``bn_eps``)."""
    path = Path(path)
    fmt = "transformers" if is_transformers_deeplab(path) else FORMATS.get(path.suffix, "mobilenet")
    if fmt == "mobilenet" and is_tf_deeplab(path):
        fmt = "tf_checkpoint"
    model = load_deeplab(path, **overrides).eval()
    config = model.config
    found = Verification(
        str(path), fmt, config.arch, config.width_mult, config.input_size, config.num_classes, config.padding,
        config.bn_eps, False, asdict(model.preprocessing), model.class_names, None, measure="pixels",
    )  # fmt: skip
    runner, found.reference, found.why_no_reference = reference_for(path, fmt, model, REFERENCES)
    return beside(model, found, runner, images, BUILT_IN_IMAGES)


def litert_runner(_module: Any, path: Path, model: DeepLabV3) -> Runner:
    """LiteRT on the file, fed our crops as the uint8 pixels it takes: each pixel's class."""
    from mobilenet.segmentation.litert import LiteRTSegmenter

    segmenter, pre = LiteRTSegmenter(path), model.preprocessing

    def run(files: list[Path]) -> np.ndarray:
        pixels = unnormalize(image_batch(files, pre), pre).round().clamp(0, 255).to(torch.uint8)
        return segmenter(pixels).numpy()

    return run


def transformers_runner(module: Any, path: Path, model: DeepLabV3) -> Runner:
    """transformers' model on our pixels; its logits, at the output stride, upsampled as TF's DeepLab (and ours) do."""
    folder = path if path.is_dir() else path.parent
    reference = module.MobileNetV2ForSemanticSegmentation.from_pretrained(folder).eval()

    def run(files: list[Path]) -> np.ndarray:
        pixels = image_batch(files, model.preprocessing)
        with torch.no_grad():
            logits = reference(pixel_values=pixels).logits
        return F.interpolate(logits, size=pixels.shape[-2:], mode="bilinear", align_corners=True).numpy()

    return run


def tensorflow_runner(module: Any, path: Path, model: DeepLabV3) -> Runner:
    """TensorFlow on the frozen graph fed our pixels; its logits at the output stride, upsampled as ours are."""
    run_graph = tensorflow_graph(module, path)

    def run(files: list[Path]) -> np.ndarray:
        pixels = image_batch(files, model.preprocessing)
        logits = torch.from_numpy(run_graph(pixels.permute(0, 2, 3, 1).numpy())).permute(0, 3, 1, 2)
        return F.interpolate(logits, size=pixels.shape[-2:], mode="bilinear", align_corners=True).numpy()

    return run


REFERENCES = {"tflite": litert_runner, "transformers": transformers_runner, "tf_graph": tensorflow_runner}
