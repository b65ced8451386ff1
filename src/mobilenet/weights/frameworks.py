"""The frameworks a classifier's weights file comes from, run on image files as each runs it: LiteRT for a TFLite
file (fed as its input quantization says), transformers for its folders (with its own image processor), timm and
torchvision for their state dicts, Keras for its files, ONNX Runtime for ONNX graphs, TensorFlow for frozen graphs
(where it is installed beside). What
:mod:`mobilenet.weights.verify` compares our model with."""

from __future__ import annotations

import importlib
import os
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


# The module each format's framework is, and how it is shown and installed where that differs.
MODULES = {
    "tflite": "ai_edge_litert",
    "transformers": "transformers",
    "timm": "timm",
    "torchvision": "torchvision",
    "keras": "keras",
    "onnx": "onnxruntime",
    "tf_graph": "tensorflow",
}
SHOWN = {"ai_edge_litert": "LiteRT", "onnxruntime": "ONNX Runtime", "tensorflow": "TensorFlow"}
# Formats whose framework cannot run the file alone, and why.
NOT_RUN = {
    "tf_checkpoint": "a checkpoint holds no network (the code that trained it builds one): TensorFlow cannot run it "
    "alone; the tests check this reader against TensorFlow's outputs",
}
# Where TensorFlow's MobileNet graphs start and what they end with: a classifier's logits, DeepLab's at its stride.
TF_STEMS = ("MobilenetV1/Conv2d_0/Conv2D", "MobilenetV2/Conv/Conv2D")
TF_LOGITS = ("Logits/Conv2d_1c_1x1/BiasAdd", "logits/semantic/BiasAdd")
PACKAGES = {"ai_edge_litert": "ai-edge-litert"}


def reference_for(
    path: Path, fmt: str, model: torch.nn.Module, references: dict[str, Callable[..., Runner]] | None = None
) -> tuple[Runner | None, str | None, str | None]:
    """The framework the file came from, as a function of image files to outputs (in our class order), with its
    name; or why there is none. ``references``: format -> ``(module, path, model) -> Runner`` (the classifiers')."""
    references = REFERENCES if references is None else references
    if fmt in NOT_RUN:
        return None, None, NOT_RUN[fmt]
    if fmt not in references:
        return None, None, "the file is mobilenet's own: it was written by this library"
    if fmt == "keras":  # Keras 3 on PyTorch, the framework already here; a backend the user chose stays
        os.environ.setdefault("KERAS_BACKEND", "torch")
    if fmt == "tf_graph":  # TensorFlow's start-up chatter, and its oneDNN kernels (they round differently per CPU)
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    name = MODULES[fmt]
    try:
        module = importlib.import_module(name)
        runner = references[fmt](module, path, model)
    except Exception as error:  # not installed, installed but broken on this torch, or no model of the file's
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        return None, None, f"{name} cannot run the file here ({first}): install it to compare with {fmt}"
    # The module's own version where it has one: one module ships in several distributions (tensorflow-cpu, ...).
    version = getattr(module, "__version__", None) or metadata.version(PACKAGES.get(name, name))
    return runner, f"{SHOWN.get(name, name)} {version}", None


def in_our_classes(logits: np.ndarray, model: MobileNet) -> np.ndarray:
    """A framework's logits in our class order: TensorFlow's first class, "background", left out where we have one
    class less."""
    return logits[:, 1:] if logits.shape[1] == model.num_classes + 1 else logits


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
        return in_our_classes(logits, model)

    return run


def keras_runner(module: Any, path: Path, model: MobileNet) -> Runner:
    config = model.config
    if path.suffix == ".keras":  # the saved model itself (safe mode: no code in the file is run)
        reference = module.saving.load_model(path, compile=False, safe_mode=True)
    else:  # weights: Keras's own builder of the architecture they were read as
        build = module.applications.MobileNetV2 if config.arch == "mobilenet_v2" else module.applications.MobileNet
        top = config.num_classes > 0
        reference = build(
            alpha=config.width_mult,
            input_shape=(config.input_size, config.input_size, 3),
            weights=None,
            include_top=top,
            classes=config.num_classes or 1000,
            classifier_activation=None,
            pooling=None if top else "avg",
        )
        reference.load_weights(path)

    def run(files: list[Path]) -> np.ndarray:  # the file says nothing of its preprocessing: ours, as read
        pixels = image_batch(files, model.preprocessing).permute(0, 2, 3, 1).numpy()  # Keras's NHWC
        return np.asarray(module.ops.convert_to_numpy(reference(pixels, training=False)), dtype=np.float32)

    return run


def onnxruntime_runner(_module: Any, path: Path, model: MobileNet) -> Runner:
    from mobilenet.runtimes.onnxruntime import ort_session

    session = ort_session(path)
    graph_input = session.get_inputs()[0]
    fixed = graph_input.shape[0] if isinstance(graph_input.shape[0], int) else None  # exported for one batch size

    def run(files: list[Path]) -> np.ndarray:  # fed as read: the graph says nothing of its preprocessing
        pixels = image_batch(files, model.preprocessing).numpy()
        step = fixed or len(pixels)
        runs = [session.run(None, {graph_input.name: pixels[i : i + step]})[0] for i in range(0, len(pixels), step)]
        logits = np.concatenate(runs).reshape(len(files), -1)
        return in_our_classes(logits, model)

    return run


def tensorflow_graph(module: Any, path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """TensorFlow running a frozen MobileNet graph from its stem conv (fed our NHWC pixels, past any preprocessing
    in the graph) to its logits' BiasAdd: [N, H, W, classes], H = W = 1 for a classifier."""
    tf = module.compat.v1
    graph_def = tf.GraphDef.FromString(path.read_bytes())
    names = [node.name for node in graph_def.node]
    stem = next((name for name in names if name.endswith(TF_STEMS)), None)
    logits = next((name for name in names if name.endswith(TF_LOGITS)), None)
    if stem is None or logits is None:
        raise ValueError(f"no {' or '.join(TF_STEMS)} and logits in the graph")
    graph = module.Graph()
    with graph.as_default():
        tf.import_graph_def(graph_def, name="")
    session = tf.Session(graph=graph)
    feed = graph.get_operation_by_name(stem).inputs[0]
    return lambda pixels: session.run(f"{logits}:0", {feed: pixels})


def tensorflow_runner(module: Any, path: Path, model: MobileNet) -> Runner:
    run_graph = tensorflow_graph(module, path)

    def run(files: list[Path]) -> np.ndarray:  # a frozen graph fed as read: ours is TF-slim's evaluation
        logits = run_graph(image_batch(files, model.preprocessing).permute(0, 2, 3, 1).numpy()).reshape(len(files), -1)
        return in_our_classes(logits, model)

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
    "keras": keras_runner,
    "onnx": onnxruntime_runner,
    "tf_graph": tensorflow_runner,
}
