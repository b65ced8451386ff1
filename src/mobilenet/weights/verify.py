"""What a classifier's weights file is, and whether our model computes what the framework that wrote it computes.

"My converted MobileNet is a few points worse" has four usual causes: TensorFlow's "SAME" padding, its 1001st
"background" class, its BatchNorm eps of 1e-3, and its [-1, 1] pixels. :func:`verify` reads a file as
:func:`~mobilenet.weights.load.load_model` does, runs it beside the framework or runtime the file came from (LiteRT
for TFLite, transformers, timm, torchvision, when installed) on the same pixels, then flips each convention in turn:
the one whose other choice agrees better is the one this reading got wrong, and the report says so.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from mobilenet.data.images import image_batch, image_files, normalize, unnormalize
from mobilenet.nn.config import ModelConfig
from mobilenet.nn.model import MobileNet
from mobilenet.nn.preprocessing import IMAGENET_MEAN, IMAGENET_STD, TF_MEAN, TF_STD
from mobilenet.nn.variants import MODELS
from mobilenet.utils.modes import evaluating
from mobilenet.weights.foreign import is_timm, torch_state_dict
from mobilenet.weights.format import read_kind
from mobilenet.weights.frameworks import Runner, reference_for
from mobilenet.weights.huggingface import BACKGROUND, architecture, class_names, read_folder
from mobilenet.weights.keras import is_keras
from mobilenet.weights.load import load_model, read_checkpoint
from mobilenet.weights.tf_checkpoint import index_of

BUILT_IN_IMAGES = 16
ImageFiles = str | Path | Sequence[str | Path] | None  # a folder, image files, or None: built-in images
MATTERS = 0.01  # a convention matters when its other choice changes top-1 agreement by more than this (or chance)


@dataclass
class Convention:
    """One convention of the file: the value read, the other choice, and how the other choice agrees."""

    name: str
    value: str
    other: str
    agreement: float  # top-1 agreement with the reference, had the other choice been made
    max_abs_diff: float | None = None

    def line(self, agreement: float, threshold: float) -> str:
        """What flipping this convention does, against the ``agreement`` of the file's reading."""
        change = self.agreement - agreement
        if change > threshold:
            return f"{self.name} {self.value} loses {change:.0%} agreement: this file needs {self.other}"
        if change < -threshold:
            return f"{self.name} {self.value} matters: {self.other} would lose {-change:.0%} agreement"
        return f"{self.name} {self.value}: {self.other} would agree as well"


@dataclass
class Verification:
    """What :func:`verify` found: the file, the conventions it was read with, and the agreement with its source."""

    path: str
    format: str
    arch: str
    width_mult: float
    input_size: int
    num_classes: int
    padding: str
    bn_eps: float
    background_dropped: bool
    preprocessing: dict[str, Any]
    class_names: list[str] | None
    reference: str | None  # "LiteRT 2.1.0", "transformers 5.25.0", ...; None: nothing to compare with
    why_no_reference: str | None = None
    images: int = 0
    agreement: float | None = None  # agreement with the reference on the same pixels (see ``measure``)
    max_abs_diff: float | None = None
    conventions: list[Convention] = field(default_factory=list)
    measure: str = "top-1"  # what agreement counts: "top-1" of a classifier, "pixels" of a segmenter's masks
    caveat: str | None = None  # what the figures cannot show (built-in images hold no objects)

    @property
    def threshold(self) -> float:
        """How much better another choice must agree to count: more than chance moves on this many images."""
        if self.measure == "pixels":  # so many that chance moves nothing: a change of MATTERS is the convention's
            return MATTERS
        return max(MATTERS, 2.5 / max(self.images, 1))

    @property
    def wrong_conventions(self) -> list[Convention]:
        """The conventions whose other choice agrees better with the reference: what this reading got wrong."""
        if self.agreement is None:
            return []
        return [c for c in self.conventions if c.agreement - self.agreement > self.threshold]

    def lines(self) -> list[str]:
        """One line per convention: whether it matters here, and whether the reading got it wrong."""
        return [c.line(self.agreement, self.threshold) for c in self.conventions] if self.agreement is not None else []

    @property
    def verdict(self) -> str:
        if self.reference is None:
            return f"nothing to compare with: {self.why_no_reference}"
        if wrong := self.wrong_conventions:
            return "; ".join(c.line(self.agreement, self.threshold) for c in wrong)
        return f"agrees with {self.reference} on {self.agreement:.1%} of {self.measure} over {self.images} images"

    def to_dict(self) -> dict[str, Any]:
        wrong = [c.name for c in self.wrong_conventions]
        return {**asdict(self), "verdict": self.verdict, "wrong": wrong, "lines": self.lines()}


def file_format(path: Path) -> str:
    """The format a classifier's file is in, as a user would name it."""
    if architecture(path) is not None:
        return "transformers"
    if path.suffix == ".tflite":
        return "tflite"
    if path.suffix == ".safetensors":
        return "mobilenet" if read_kind(path) is not None else "timm"
    if is_keras(path):
        return "keras"
    if path.suffix == ".onnx":
        return "onnx"
    if path.suffix == ".pb":
        return "tf_graph"
    if index_of(path) is not None:
        return "tf_checkpoint"
    return "timm" if is_timm(torch_state_dict(path)) else "torchvision"


def verify(
    path: str | Path,
    images: str | Path | Sequence[str | Path] | None = None,
    model_name: str | None = None,
    **overrides: Any,
) -> Verification:
    """Read a classifier's weights file, and run it beside the framework it came from.

    Args:
        path: any classifier file :func:`~mobilenet.weights.load.load_model` reads.
        images: image files or a folder (None: built-in images of random shapes and colours).
        model_name: the model of a bare state dict (``"mobilenet_v2_050"``), whose classes the file tells.
        **overrides: conventions to read the file with instead of its own (``padding``, ``bn_eps``): a reading that
            is wrong on purpose, or what a bare state dict needs.

    Returns:
        The :class:`Verification`; its ``verdict`` is one line.
    """
    path = Path(path)
    if not path.exists() and index_of(path) is None:
        raise FileNotFoundError(f"weights file not found: {path}")
    fmt = file_format(path)
    model = load_model(path, expect(path, model_name), **overrides).eval()
    config = model.config
    found = Verification(
        str(path), fmt, config.arch, config.width_mult, config.input_size, config.num_classes, config.padding,
        config.bn_eps, background_dropped(path, fmt, model), asdict(model.preprocessing), model.class_names, None,
    )  # fmt: skip
    runner, found.reference, found.why_no_reference = reference_for(path, fmt, model)
    return beside(model, found, runner, images)


def beside(
    model: torch.nn.Module,
    found: Verification,
    runner: Runner | None,
    images: ImageFiles,
    count: int = BUILT_IN_IMAGES,
    run: Callable[[torch.nn.Module, torch.Tensor], Any] | None = None,
    agree: Callable[[Any, Any], tuple[float, float | None]] | None = None,
) -> Verification:
    """``found`` completed with how ``model`` agrees with ``runner`` (the file's framework; None: nothing to run) on
    ``images`` (None: ``count`` built-in ones), and how each convention flipped would: any model whose config has
    ``padding`` and ``bn_eps``. ``run(model, pixels)`` gives its outputs (None: :func:`ours`, logits whose dimension
    1 is the classes) and ``agree(mine, theirs)`` scores them (None: :func:`compare`)."""
    run, agree = run or ours, agree or compare
    if runner is None:
        return found
    with tempfile.TemporaryDirectory(prefix="mobilenet-verify-") as folder:
        given = image_files([images]) if isinstance(images, str | Path) else list(images or [])
        files = [Path(file) for file in given] or built_in(Path(folder), count)
        if not given and found.measure != "top-1":
            found.caveat = (
                f"the built-in images hold no objects, so agreement over {found.measure} says little: pass --images "
                "with photos"
            )
        pixels = image_batch(files, model.preprocessing)
        theirs = runner(files)
        found.images = len(files)
        mine = run(model, pixels)
        found.agreement, found.max_abs_diff = agree(mine, theirs)
        found.conventions = conventions(model, pixels, mine, theirs, found.background_dropped, run, agree)
    return found


def expect(path: Path, model_name: str | None) -> ModelConfig | None:
    """The config of a bare state dict: the named model's, with as many classes as the file's classifier has."""
    if model_name is None:
        return None
    if model_name not in MODELS:
        raise ValueError(f"unknown model {model_name!r}: choose one of {', '.join(MODELS)}")
    classifier = read_checkpoint(path).state_dict.get("classifier.1.weight")
    classes = MODELS[model_name].num_classes if classifier is None else len(classifier)
    return replace(MODELS[model_name], num_classes=classes)


def ours(model: torch.nn.Module, pixels: torch.Tensor) -> np.ndarray:
    with evaluating(model), torch.no_grad():
        return model(pixels).numpy()


def compare(mine: np.ndarray, theirs: np.ndarray) -> tuple[float, float | None]:
    """Top-1 agreement (of every pixel, for masks) and the largest difference, in the reference's terms:
    probabilities where it gives them (a TFLite classifier ending in softmax), logits otherwise; a reference that
    gives classes only (an 8-bit DeepLab file's argmax) has agreement alone."""
    if theirs.ndim == mine.ndim - 1:
        return float(np.mean(mine.argmax(1) == theirs)), None
    sums = theirs.sum(1)  # an 8-bit softmax sums to a little under 1 (each probability rounded down, background gone)
    if theirs.min() >= 0 and theirs.max() <= 1 and sums.min() > 0.5 and sums.max() < 1.05:
        mine = torch.softmax(torch.from_numpy(mine), 1).numpy()
    return float(np.mean(mine.argmax(1) == theirs.argmax(1))), float(np.abs(mine - theirs).max())


def conventions(
    model: torch.nn.Module,
    pixels: torch.Tensor,
    mine: Any,
    theirs: Any,
    background: bool,
    run: Callable[[torch.nn.Module, torch.Tensor], Any] = ours,
    agree: Callable[[Any, Any], tuple[float, float | None]] = compare,
) -> list[Convention]:
    """Each convention flipped in turn, scored against the reference's outputs; ``pixels`` are the file's own
    preprocessing of the images, ``mine`` our outputs on them (``run`` and ``agree``: see :func:`beside`)."""
    config, pre = model.config, model.preprocessing
    found = []
    for name, other in (
        ("padding", flip(config.padding, "tf_same", "symmetric")),
        ("bn_eps", flip(config.bn_eps, 1e-3, 1e-5)),
    ):
        changed = type(model)(replace(config, **{name: other}))
        changed.load_state_dict(model.state_dict())
        found.append(Convention(name, str(getattr(config, name)), str(other), *agree(run(changed, pixels), theirs)))
    tf_pixels = abs(pre.mean[0] - 0.5) < 0.01  # [-1, 1]: TF's 0.5 (or Coral's 128/255)
    scales = {"[-1, 1]": (TF_MEAN, TF_STD), "ImageNet's mean/std": (IMAGENET_MEAN, IMAGENET_STD)}
    value, other = ("[-1, 1]", "ImageNet's mean/std") if tf_pixels else ("ImageNet's mean/std", "[-1, 1]")
    mean, std = scales[other]
    # The same images scaled the other way: back to pixels, then normalised as the other convention does.
    rescaled = normalize(unnormalize(pixels, pre), replace(pre, mean=mean, std=std))
    agreement = agree(run(model, rescaled), theirs)
    found.append(Convention("pixels", value, other, *agreement))
    if background:  # kept, index i of the 1001 outputs read as class i: every class one too high
        found.append(
            Convention("background class", "dropped", "kept", float(np.mean(mine.argmax(1) + 1 == theirs.argmax(1))))
        )
    return found


def flip(value: Any, first: Any, second: Any) -> Any:
    return second if value == first else first


def background_dropped(path: Path, fmt: str, model: MobileNet) -> bool:
    """Whether the file's classifier had TensorFlow's 1001st class, first, which the reading dropped."""
    if fmt == "tflite":
        from mobilenet.weights.tflite import read_tflite

        classifier = read_tflite(path).classifier
        return classifier is not None and len(classifier.weight) == 1001 and model.num_classes == 1000
    if fmt == "transformers":
        found = read_folder(path)
        names = (class_names(found.settings) if found else None) or []
        return bool(names) and names[0] == BACKGROUND and len(names) == model.num_classes + 1
    if fmt == "onnx":
        from mobilenet.weights.onnx_weights import load_proto, walk

        classifier = walk(load_proto(path).graph, str(path)).classifier
        return classifier is not None and len(classifier[0]) == 1001 and model.num_classes == 1000
    if fmt in ("tf_graph", "tf_checkpoint"):
        from mobilenet.weights.tf_slim import logits_classes

        return logits_classes(path) == 1001 and model.num_classes == 1000
    return False


def built_in(folder: Path, count: int = BUILT_IN_IMAGES) -> list[Path]:
    """Images of random discs and boxes on random gradients, the same every call: enough for logits to differ."""
    generator = np.random.default_rng(0)
    files = []
    for index in range(count):
        height, width = generator.integers(160, 400, 2)
        ramp = np.linspace(0, 1, width)[None, :, None] * generator.uniform(0, 255, 3)
        pixels = np.clip(ramp + generator.normal(0, 20, (height, width, 3)), 0, 255)
        for _ in range(4):
            top, left = generator.integers(0, height // 2), generator.integers(0, width // 2)
            pixels[top : top + height // 3, left : left + width // 3] = generator.uniform(0, 255, 3)
        file = folder / f"{index}.png"
        Image.fromarray(pixels.astype(np.uint8)).save(file)
        files.append(file)
    return files
