"""A fourth kind of model, registered from the tests alone: per-image keypoints, the centre of the ink of each of the
embedded digits (or of any image folder with a ``keypoints.json``), regressed by a MobileNetV2.

Everything it needs is in this one module: its config and model, its training settings and recipe, its task for the
unchanged trainer, its files (our safetensors of kind ``keypoints``), its predictions and its scores (PCK: the share
of points found within a radius). It proves the registry: registered (in-process with ``mobilenet.registry.register``,
in a fresh process through the ``mobilenet.kinds`` entry point of a distribution on ``PYTHONPATH``), it trains,
predicts and evaluates through ``mobilenet train``, ``predict`` and ``eval`` with no change to the library.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import Dataset

from mobilenet.classification.data import load_digits_images
from mobilenet.data.images import IMAGE_SUFFIXES, each_file, load_image, to_tensor
from mobilenet.data.shards import batches, summed
from mobilenet.data.subsets import split_fraction
from mobilenet.kinds import ModelKind
from mobilenet.nn.config import ModelConfig
from mobilenet.nn.model import MobileNet
from mobilenet.nn.preprocessing import Preprocessing
from mobilenet.training.config import TrainConfig, setting
from mobilenet.training.task import TrainingData
from mobilenet.utils.modes import evaluating
from mobilenet.weights.load import load_task_model

TASK = "keypoints"
LABELS = "keypoints.json"  # a data folder's points: {"<image file>": [[x, y], ...]}, x and y in [0, 1]
HERE = "tests.kinds.keypoints"


@dataclass(frozen=True)
class KeypointConfig:
    """A keypoint regressor: a MobileNet whose outputs are the points' coordinates."""

    arch: str = "mobilenet_v2"
    width_mult: float = 0.35
    keypoints: int = 1
    in_chans: int = 3
    input_size: int = 32

    def backbone(self) -> ModelConfig:
        return ModelConfig(
            arch=self.arch, width_mult=self.width_mult, num_classes=2 * self.keypoints, in_chans=self.in_chans,
            input_size=self.input_size, small_input=True, dropout=0.0,
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class KeypointNet(nn.Module):
    """Images in, (N, keypoints, 2) points out, each (x, y) a fraction of the image's width and height."""

    kind = TASK
    config_type = KeypointConfig

    def __init__(self, config: KeypointConfig | None = None, **overrides: Any) -> None:
        super().__init__()
        self.config = replace(config or KeypointConfig(), **overrides)
        self.network = MobileNet(self.config.backbone())
        self.class_names: list[str] | None = [f"point {i}" for i in range(self.config.keypoints)]
        self.preprocessing = Preprocessing(input_size=self.config.input_size, crop_pct=1.0)

    @property
    def num_classes(self) -> int:
        return self.config.keypoints  # what its names name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x).view(len(x), self.config.keypoints, 2)


@dataclass(frozen=True)
class KeypointSettings:
    radius: float = setting(0.1, "a point within this distance of the truth (a fraction of the image) is found")

    def __post_init__(self) -> None:
        if not 0 < self.radius <= 1:
            raise ValueError("--radius must be in (0, 1]")


Sample = tuple[Image.Image | Path, np.ndarray]  # an image (or its file) and its points (K, 2)


def ink_centre(image: Image.Image) -> np.ndarray:
    """The centre of a digit's ink, (1, 2) in [0, 1]: the centre of mass of its brightness."""
    pixels = np.asarray(image.convert("L"), dtype=np.float64)
    rows, columns = np.indices(pixels.shape)
    total = max(pixels.sum(), 1e-9)
    x, y = (pixels * (columns + 0.5)).sum() / total, (pixels * (rows + 0.5)).sum() / total
    return np.array([[x / pixels.shape[1], y / pixels.shape[0]]], dtype=np.float32)


def digits() -> list[Sample]:
    return [(image, ink_centre(image)) for image, _ in load_digits_images()[0]]


def folder(root: str | Path) -> list[Sample]:
    """The images of ``root`` with their points from ``root/keypoints.json``; a bad entry fails in one line."""
    root = Path(root)
    labels = root / LABELS
    if not labels.is_file():
        raise FileNotFoundError(f"{root} holds no {LABELS}: expected {{image file: [[x, y], ...]}}")
    points = json.loads(labels.read_text())
    samples = []
    for path in sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        found = np.asarray(points.get(path.name), dtype=np.float32)
        if found.ndim != 2 or found.shape[1] != 2 or not ((found >= 0) & (found <= 1)).all():
            raise ValueError(f"{labels}: the points of {path.name} must be [[x, y], ...] in [0, 1], not "
                             f"{points.get(path.name)}")  # fmt: skip
        samples.append((path, found))
    return samples


class KeypointImages(Dataset):
    """Samples squashed to the input size; with ``hflip``, indexed by ``(index, seed)``, mirrored at random."""

    def __init__(self, samples: Sequence[Sample], pre: Preprocessing, hflip: bool = False) -> None:
        self.samples, self.pre, self.hflip = list(samples), pre, hflip

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor] | None:
        index, seed = key if isinstance(key, tuple) else (key, 0)
        source, points = self.samples[index]
        try:
            image = source.convert("RGB") if isinstance(source, Image.Image) else load_image(source)
        except (OSError, ValueError) as error:
            warnings.warn(f"skipped: {error}", stacklevel=2)
            return None
        points = points.copy()
        if self.hflip and np.random.default_rng(seed).random() < 0.5:
            image, points[:, 0] = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT), 1 - points[:, 0]
        size = self.pre.input_size
        return to_tensor(image.resize((size, size), Image.Resampling.BILINEAR), self.pre), torch.from_numpy(points)


def collate(items: list) -> tuple[torch.Tensor, torch.Tensor, int]:
    kept = [item for item in items if item is not None]
    if not kept:
        return torch.empty(0), torch.empty(0, 1, 2), len(items)
    return torch.stack([i for i, _ in kept]), torch.stack([p for _, p in kept]), len(items) - len(kept)


@dataclass
class KeypointEvaluation:
    pck: float  # the share of points found within ``radius``
    mean_error: float  # the mean distance to the truth, a fraction of the image
    radius: float
    n: int
    skipped: int

    @property
    def metrics(self) -> dict[str, float]:
        return {"pck": self.pck, "error": self.mean_error}

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    def report(self, source: str) -> str:
        return f"{source}: PCK@{self.radius:g} {self.pck:.1%}, mean error {self.mean_error:.3f} on {self.n} images"

    def plot(self, path: str | Path, title: str = "") -> None:
        from mobilenet.utils.plotting import pyplot, save_figure

        plt = pyplot()
        fig, axis = plt.subplots(figsize=(4, 3))
        axis.bar(["PCK", "mean error"], [self.pck, self.mean_error])
        axis.set_title(title)
        save_figure(fig, path)


@torch.inference_mode()
def score(model: Any, dataset: KeypointImages, batch_size: int, workers: int, radius: float, device: Any = "cpu",
          progress: bool = False) -> KeypointEvaluation:  # fmt: skip
    """Each process scores its share; the sums are summed across processes."""
    sums = torch.zeros(4, dtype=torch.float64)  # points found, distance sum, points, skipped images
    with evaluating(model):
        for images, points, skipped in batches(dataset, batch_size, workers, collate, "scoring", progress):
            sums[3] += skipped
            if len(images):
                distance = (model(images.to(device)).float().cpu() - points).norm(dim=-1)
                sums[:3] += torch.stack([(distance <= radius).sum(), distance.sum(), torch.tensor(distance.numel())])
    summed(sums)
    points = max(sums[2].item(), 1.0)
    images = int(sums[2].item()) // max(dataset.samples[0][1].shape[0], 1) if dataset.samples else 0
    return KeypointEvaluation(sums[0].item() / points, sums[1].item() / points, radius, images, int(sums[3]))


class KeypointTask:
    name = TASK
    settings = KeypointSettings
    best_metric = "pck"
    train_stats = ("loss", "found", "points")

    def __init__(self) -> None:
        self.options = KeypointSettings()

    def prepare(self, config: TrainConfig, model: nn.Module | None = None) -> tuple[nn.Module, TrainingData]:
        self.options = KeypointSettings(**config.options)
        samples = digits() if config.data is None else folder(config.data)
        train, val = split_fraction(samples, config.val_fraction, config.seed)
        if model is None:
            overrides = {"input_size": config.input_size} if config.input_size else {}
            overrides |= {"width_mult": config.width_mult} if config.width_mult else {}
            if config.weights is not None:
                model = load_keypoints(config.weights, **overrides)
            else:
                model = KeypointNet(replace(MODELS[config.model or DEFAULT_MODEL], **overrides))
        source = "scikit-learn digits (embedded)" if config.data is None else config.data
        training = KeypointImages(train, model.preprocessing, config.hflip)
        return model, TrainingData(training, KeypointImages(val, model.preprocessing), model.class_names, source)

    def collate(self, items: Sequence[Any]) -> tuple[torch.Tensor, torch.Tensor, int]:
        return collate(list(items))

    def loss(self, net: nn.Module, images: torch.Tensor, points: torch.Tensor, config: TrainConfig,
             generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        predicted = net(images).float()
        loss = (predicted - points).square().sum(dim=-1).mean()
        distance = (predicted.detach() - points).norm(dim=-1)
        found = (distance <= self.options.radius).sum()
        count = loss.new_tensor(distance.numel())
        return loss, torch.stack([loss.detach() * count, found.to(loss.dtype), count])

    def summarize(self, totals: dict[str, float]) -> dict[str, float]:
        points = max(totals["points"], 1.0)
        return {"loss": totals["loss"] / points, "pck": totals["found"] / points}

    def evaluate(self, model: Any, dataset: KeypointImages, batch_size: int, workers: int,
                 device: torch.device) -> KeypointEvaluation:  # fmt: skip
        return score(model, dataset, batch_size, workers, self.options.radius, device)


def load_keypoints(path: str | Path, **overrides: Any) -> KeypointNet:
    return load_task_model(path, KeypointNet, f"{path} holds no keypoint model", **overrides)


def create_keypoints(
    name: str, weights: str | Path | None = None, progress: bool = True, **overrides: Any
) -> KeypointNet:
    if weights is not None:
        return load_keypoints(weights, **overrides)
    return KeypointNet(replace(MODELS[name], **overrides))


def predict(model: Any, images: list[str]) -> list[dict[str, Any]]:
    """Each image's points, in its own pixels."""

    def result(path: str, image: Image.Image) -> dict[str, Any]:
        dataset = KeypointImages([(image, np.zeros((1, 2), np.float32))], model.preprocessing)
        with evaluating(model), torch.inference_mode():
            points = model(dataset[0][0][None]).float()[0].numpy()
        pixels = points * np.array(image.size, dtype=np.float32)
        return {"image": path, "keypoints": [[round(float(x), 2), round(float(y), 2)] for x, y in pixels]}

    return each_file(images, result)


def describe(result: dict[str, Any]) -> str:
    return f"{result['image']}: " + ", ".join(f"({x:.1f}, {y:.1f})" for x, y in result["keypoints"])


def evaluate(load: Callable[[int], Any], data: str | Path, batch_size: int = 32, workers: int = 0,
             progress: bool = False, radius: float = 0.1) -> KeypointEvaluation:  # fmt: skip
    samples = folder(data)
    model = load(len(samples))
    return score(model, KeypointImages(samples, model.preprocessing), batch_size, workers, radius, progress=progress)


MODELS = {"keypoints_mobilenet_v2_035": KeypointConfig()}
DEFAULT_MODEL = "keypoints_mobilenet_v2_035"
RECIPE = TrainConfig(
    recipe="keypoints", task=TASK, model=DEFAULT_MODEL, optimizer="adamw", lr=0.003, schedule="cosine",
    weight_decay=0.0, epochs=3, batch_size=32, input_size=32, workers=0, val_fraction=0.2,
)  # fmt: skip

KIND = ModelKind(
    name=TASK,
    description="the centre of each digit's ink (a test-only kind)",
    evaluates=f"the share of points within a radius (PCK) on a folder of images with a {LABELS}",
    file_kind=TASK,
    command="predict",
    config=KeypointConfig,
    models=MODELS,
    default_model=DEFAULT_MODEL,
    settings=KeypointSettings,
    recipes={"keypoints": RECIPE},
    default_recipe="keypoints",
    task=f"{HERE}:KeypointTask",
    create=f"{HERE}:create_keypoints",
    load=f"{HERE}:load_keypoints",
    predict=f"{HERE}:predict",
    describe=f"{HERE}:describe",
    evaluate=f"{HERE}:evaluate",
    eval_options=(),
)
