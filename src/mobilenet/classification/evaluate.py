"""Scoring a model on labelled image files."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from mobilenet.classification.data import LabelledImages, collate, imagenet_targets, scan_folder
from mobilenet.data.images import ImageSource, image_batch
from mobilenet.inference.deploy import Deployed, load_deployed


@torch.inference_mode()
def predict_logits(
    model: nn.Module, images: Sequence[str | Path], batch_size: int = 50, progress: bool = False
) -> torch.Tensor:
    """Logits of ``model`` for each image file, with the model's own preprocessing."""
    model.eval()
    outputs = []
    batches = range(0, len(images), batch_size)
    for start in tqdm(batches, desc="scoring", unit="batch", disable=not progress):
        outputs.append(model(image_batch(list(images[start : start + batch_size]), model.preprocessing)))
    return torch.cat(outputs)


def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor, k: int = 1) -> float:
    """The fraction of rows whose label is among the ``k`` highest logits."""
    top = logits.topk(min(k, logits.shape[1]), dim=1).indices
    return (top == labels[:, None]).any(dim=1).float().mean().item()


@dataclass
class EvalResult:
    """Scores of a model on a labelled dataset (fractions in [0, 1])."""

    top1: float
    top5: float
    n: int
    loss: float
    classes: list[str]
    per_class: list[float]
    confusion: list[list[int]]  # rows: true class; columns: predicted class, then "another output"
    images_per_s: float
    skipped: int

    @property
    def metrics(self) -> dict[str, float]:
        """The scores a training run records per epoch (as ``val_<name>``)."""
        return {"loss": self.loss, "top1": self.top1, "top5": self.top5}

    def to_dict(self) -> dict:
        return asdict(self)


@torch.inference_mode()
def evaluate_dataset(
    model: nn.Module | Deployed | Callable[[torch.Tensor], torch.Tensor],
    dataset: LabelledImages,
    targets: Sequence[int] | None = None,
    batch_size: int = 64,
    workers: int = 0,
    progress: bool = False,
    device: torch.device | str = "cpu",
) -> EvalResult:
    """Score ``model`` on ``dataset``; ``targets[label]`` is the model output of each dataset class.

    Under ``torch.distributed`` each process scores its share and the counts are summed.
    """
    targets = list(range(len(dataset.classes))) if targets is None else list(targets)
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    shard = Subset(dataset, [(i, 0) for i in range(rank, len(dataset), world)])
    loader = DataLoader(
        shard, batch_size=batch_size, num_workers=workers, collate_fn=collate, generator=torch.Generator()
    )  # leaves the global RNG (dropout's) untouched
    num_classes = len(dataset.classes)
    to_model = torch.tensor(targets)
    confusion = torch.zeros(num_classes, num_classes + 1, dtype=torch.long)  # last column: other outputs
    counts = torch.zeros(4, dtype=torch.float64)  # top-5 hits, loss sum, images, skipped
    from_model = None  # model output -> dataset class (num_classes: an output of no dataset class)
    if isinstance(model, nn.Module):
        model.eval()
    start = time.perf_counter()
    for images, labels, skipped in tqdm(loader, desc="evaluating", unit="batch", disable=not progress):
        counts[3] += skipped
        if not len(labels):
            continue
        logits = model(images.to(device)).float().cpu()
        wanted = to_model[labels]
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        counts[0] += (top == wanted[:, None]).any(dim=1).sum()
        counts[1] += nn.functional.cross_entropy(logits, wanted, reduction="sum")
        counts[2] += len(labels)
        if from_model is None:
            from_model = torch.full((logits.shape[1],), num_classes, dtype=torch.long)
            from_model[to_model] = torch.arange(num_classes)
        confusion.index_put_((labels, from_model[top[:, 0]]), torch.ones_like(labels), accumulate=True)
    if world > 1:
        dist.all_reduce(confusion)
        dist.all_reduce(counts)
    seconds = time.perf_counter() - start
    n = int(counts[2])
    rows = confusion.sum(dim=1).clamp(min=1)
    return EvalResult(
        top1=confusion.diagonal().sum().item() / max(n, 1),
        top5=counts[0].item() / max(n, 1),
        n=n,
        loss=counts[1].item() / max(n, 1),
        classes=list(dataset.classes),
        per_class=(confusion.diagonal() / rows).tolist(),
        confusion=confusion.tolist(),
        images_per_s=n / seconds if seconds else 0.0,
        skipped=int(counts[3]),
    )


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
    """Score a model file on ``root/<class>/<image>``, mapping folders to the model's classes.

    Folders named like the model's classes map by name; ImageNet synset folders map through
    ``class_index`` (synset -> index, the format of ``imagenet_class_index.json``). Weights run
    through ``deploy(backend, precision, calibration)``, by default the fastest fp32 path installed;
    an OpenVINO IR runs as it was saved (see :func:`~mobilenet.inference.deploy.load_deployed`).
    """
    samples, classes = scan_folder(root)
    runner = load_deployed(weights, backend, precision, calibration, images=len(samples))
    index = None
    if class_index is not None:
        index = {synset: int(i) for i, (synset, *_rest) in json.loads(Path(class_index).read_text()).items()}
    targets = imagenet_targets(classes, runner.class_names, index)
    dataset = LabelledImages(samples, classes, runner.preprocessing)
    return evaluate_dataset(runner, dataset, targets, batch_size=batch_size, workers=workers, progress=progress)
