"""Scoring a classifier on labelled images: a dataset (each process its share), or a folder of class folders."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mobilenet.classification.data import LabelledImages, collate, imagenet_targets, scan_labelled
from mobilenet.classification.load import load_classifier
from mobilenet.classification.metrics import EvalResult, Tally
from mobilenet.data.images import ImageSource
from mobilenet.data.shards import batches
from mobilenet.inference.deploy import deploy_file
from mobilenet.nn.config import ModelConfig
from mobilenet.utils.modes import evaluating


@torch.inference_mode()
def evaluate_dataset(
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    dataset: LabelledImages,
    targets: Sequence[int] | None = None,
    batch_size: int = 64,
    workers: int = 0,
    progress: bool = False,
    device: torch.device | str = "cpu",
) -> EvalResult:
    """Score ``model`` on ``dataset``; ``targets[label]`` is the model output of each dataset class.

    ``model`` is a module (in eval mode while it is scored), what ``deploy`` made of one, or any callable from a
    batch to logits. Under ``torch.distributed`` each process scores its share and the counts are summed.
    """
    targets = list(range(len(dataset.classes))) if targets is None else list(targets)
    tally = Tally(list(dataset.classes), targets)
    start = time.perf_counter()
    with evaluating(model):
        for images, labels, skipped in batches(dataset, batch_size, workers, collate, "evaluating", progress):
            logits = model(images.to(device)).float().cpu() if len(labels) else torch.empty(0, 0)
            tally.add(logits, labels, skipped)
    return tally.result(time.perf_counter() - start)


def evaluate_files(
    load: Callable[[int], Any],
    data: str | Path,
    batch_size: int = 64,
    workers: int = 2,
    progress: bool = False,
    class_index: str | Path | None = None,
) -> EvalResult:
    """Score a classifier on ``data/<class>/<image>`` (or its shards), mapping folders to the model's classes.

    ``load(images)`` gives the model (told how many images it will run on). Folders named like the model's classes
    map by name; ImageNet synset folders map through ``class_index`` (synset -> index, the format of
    ``imagenet_class_index.json``).
    """
    samples, classes = scan_labelled(data)
    runner = load(len(samples))
    index = None
    if class_index is not None:
        index = {synset: int(i) for i, (synset, *_rest) in json.loads(Path(class_index).read_text()).items()}
    targets = imagenet_targets(classes, runner.class_names, index)
    dataset = LabelledImages(samples, classes, runner.preprocessing)
    return evaluate_dataset(runner, dataset, targets, batch_size=batch_size, workers=workers, progress=progress)


def evaluate_folder(
    weights: str | Path,
    root: str | Path,
    class_index: str | Path | None = None,
    batch_size: int = 64,
    workers: int = 2,
    progress: bool = False,
    backend: str = "auto",
    precision: str | None = None,
    calibration: ImageSource | None = None,
) -> EvalResult:
    """Score a classifier's weights file on ``root/<class>/<image>`` (see :func:`evaluate_files`).

    The weights run through ``deploy(backend, precision, calibration)``, by default the fastest fp32 path
    installed; an OpenVINO IR runs as it was saved (see :func:`~mobilenet.inference.deploy.deploy_file`).
    """

    def load(images: int) -> Any:
        return deploy_file(weights, load_classifier, ModelConfig, backend, precision, calibration, images=images)

    return evaluate_files(load, root, batch_size, workers, progress, class_index)
