"""A second task for the trainer, dense this time: per-pixel segmentation of the embedded digits.

It exists to prove that the loop is task-neutral: everything here is what a task owns (data, model, loss,
metrics), and nothing of the trainer changes. Each 32x32 digit scan gets a mask whose pixels brighter than
``THRESHOLD`` are the digit's class (digit + 1) and the rest background (0): 11 classes, scored by mIoU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from mobilenet.classification.data import load_digits_images, split_fraction
from mobilenet.data.images import to_tensor
from mobilenet.nn.config import ModelConfig
from mobilenet.nn.preprocessing import Preprocessing
from mobilenet.nn.variants import MODELS, model_name
from mobilenet.registry import create_model
from mobilenet.training.config import TrainConfig
from mobilenet.training.task import TrainingData
from mobilenet.weights.format import read_safetensors
from mobilenet.weights.load import load_state_dict

THRESHOLD = 128  # of 0..255: brighter pixels are ink (the digit), the rest background
CLASS_NAMES = ["background", *(f"digit {d}" for d in range(10))]
BACKGROUND = 0
DEFAULT_BACKBONE = "mobilenet_v2_035"
# The last bottleneck tap (112 channels at width 0.35): stride 8 of the input with ``small_input`` (4x4 for 32x32
# digits). The 1280-channel conv after it (tap 4) would add 143k weights to the 251k of the whole model.
STRIDE_8_TAP = 3

MaskItem = tuple[torch.Tensor, torch.Tensor]  # (normalized image (3, H, W), class per pixel (H, W))


class DigitMaskNet(nn.Module):
    """A MobileNet backbone's stride-8 features, a 1x1 conv to class logits, upsampled to the input size.

    Built from ``config`` alone (the backbone's :class:`ModelConfig`, whose ``num_classes`` is the number of
    mask classes and ``dropout`` the head's), because quantization-aware training rebuilds a model as
    ``type(model)(model.config)``. ``config``, ``class_names`` and ``preprocessing`` are what the trainer's
    weights files save.
    """

    kind = "digit_mask"  # what its weights files say they hold

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        backbone = create_model(model_name(config), features_only=True, out_indices=(STRIDE_8_TAP,), **config.to_dict())
        self.config = config
        self.backbone = backbone
        # Named ``head`` so that the optimizer treats it as the new layer (``backbone_lr_mult``).
        self.head = nn.Sequential(
            nn.Dropout2d(config.dropout), nn.Conv2d(backbone.feature_info.channels(0), config.num_classes, 1)
        )
        self.class_names: list[str] | None = None
        self.preprocessing = backbone.preprocessing

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (features,) = self.backbone(x)
        logits = self.head(features)
        return nn.functional.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


def load_digit_mask_net(path: str | Path) -> DigitMaskNet:
    """A DigitMaskNet from a weights file a run saved (best.safetensors): its config decides the network."""
    saved = read_safetensors(Path(path))
    if saved.info.kind != DigitMaskNet.kind or saved.info.config_fields is None:
        raise ValueError(f"{path} holds no {DigitMaskNet.kind} network: pass a run's best.safetensors")
    model = DigitMaskNet(ModelConfig(**saved.info.config_fields))
    load_state_dict(model, saved.state_dict, source=str(path))
    model.class_names = saved.class_names
    if saved.preprocessing is not None:
        model.preprocessing = saved.preprocessing
    return model


def digit_mask(image: Image.Image, threshold: int = THRESHOLD, label: int = 0) -> np.ndarray:
    """The class of every pixel of a grayscale digit image: ``label + 1`` where it is bright, else background."""
    ink = np.asarray(image.convert("L")) > threshold
    return np.where(ink, label + 1, BACKGROUND).astype(np.int64)


class DigitMasks(Dataset):
    """(image, mask) pairs of digit scans, indexed by ``(index, seed)``; the seed decides a random flip."""

    def __init__(self, samples: Sequence[tuple[Image.Image, int]], pre: Preprocessing, hflip: bool = False) -> None:
        self.samples, self.pre, self.hflip = list(samples), pre, hflip

    def __len__(self) -> int:
        return len(self.samples)

    def without_augmentation(self) -> DigitMasks:
        return DigitMasks(self.samples, self.pre)

    def __getitem__(self, key: tuple[int, int] | int) -> MaskItem | None:
        index, seed = key if isinstance(key, tuple) else (key, 0)
        image, label = self.samples[index]
        size = self.pre.input_size
        if image.size != (size, size):
            image = image.resize((size, size), Image.Resampling.BILINEAR)
        # The seed alone decides the flip: a sample looks the same in every worker and after a resume.
        if self.hflip and np.random.default_rng(seed).random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        mask = torch.from_numpy(digit_mask(image, label=label))  # from the flipped image: they move together
        return to_tensor(image.convert("RGB"), self.pre), mask


def collate_masks(items: Sequence[MaskItem | None]) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Stack a batch, dropping unreadable items (None); also returns how many were dropped."""
    kept = [item for item in items if item is not None]
    if not kept:
        return torch.empty(0), torch.empty(0, dtype=torch.long), len(items)
    return torch.stack([image for image, _ in kept]), torch.stack([mask for _, mask in kept]), len(items) - len(kept)


def confusion_matrix(predicted: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Pixel counts: rows the true class, columns the predicted one."""
    pairs = target.flatten() * num_classes + predicted.flatten()
    return torch.bincount(pairs, minlength=num_classes**2).reshape(num_classes, num_classes)


def sum_across_processes(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` summed over the processes of torch.distributed (itself when there is one process).

    The sum runs where the backend can: NCCL only reduces CUDA tensors, gloo CPU ones.
    """
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return tensor
    on_cuda = dist.get_backend() == "nccl"
    summed = tensor.to(torch.device("cuda", torch.cuda.current_device()) if on_cuda else torch.device("cpu"))
    dist.all_reduce(summed)
    return summed.to(tensor.device)


@dataclass
class MaskEvaluation:
    """Scores of a segmenter on a set of masks; ``n`` counts images, the rates are over pixels."""

    loss: float
    pixel_acc: float
    miou: float  # mean over the classes that occur in the masks or the predictions
    per_class_iou: list[float]  # NaN for a class neither in the masks nor predicted
    confusion: list[list[int]]  # rows: true class; columns: predicted class
    n: int
    skipped: int

    @property
    def metrics(self) -> dict[str, float]:
        """What the run log records per epoch (as ``val_<name>``)."""
        return {"loss": self.loss, "pixel_acc": self.pixel_acc, "miou": self.miou}


def intersection_over_union(confusion: torch.Tensor) -> torch.Tensor:
    """Per-class IoU from a confusion matrix: NaN where the class has no pixel, true or predicted."""
    confusion = confusion.double()
    hits = confusion.diagonal()
    union = confusion.sum(0) + confusion.sum(1) - hits
    return torch.where(union > 0, hits / union.clamp(min=1), torch.full_like(hits, float("nan")))


@torch.inference_mode()
def evaluate_masks(
    model: Any, dataset: DigitMasks, num_classes: int, batch_size: int, workers: int, device: torch.device
) -> MaskEvaluation:
    """Score ``model`` (a module or a callable to logits) on ``dataset``; each process scores its share."""
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    shard = Subset(dataset, [(i, 0) for i in range(rank, len(dataset), world)])
    loader = DataLoader(
        shard, batch_size=batch_size, num_workers=workers, collate_fn=collate_masks, generator=torch.Generator()
    )  # its own generator leaves the global RNG (dropout's, restored on resume) untouched
    if isinstance(model, nn.Module):
        model.eval()
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)
    counts = torch.zeros(3, dtype=torch.float64)  # loss sum over pixels, images, skipped
    for images, masks, skipped in loader:
        counts[2] += skipped
        if not len(masks):
            continue
        logits = model(images.to(device)).float().cpu()
        counts[0] += nn.functional.cross_entropy(logits, masks, reduction="sum")
        counts[1] += len(masks)
        confusion += confusion_matrix(logits.argmax(1), masks, num_classes)
    confusion, counts = sum_across_processes(confusion), sum_across_processes(counts)
    pixels = max(int(confusion.sum()), 1)
    iou = intersection_over_union(confusion)
    return MaskEvaluation(
        loss=counts[0].item() / pixels,
        pixel_acc=confusion.diagonal().sum().item() / pixels,
        miou=iou.nanmean().nan_to_num(0.0).item(),
        per_class_iou=iou.tolist(),
        confusion=confusion.tolist(),
        n=int(counts[1]),
        skipped=int(counts[2]),
    )


class DigitMaskTask:
    """Segment the embedded digits: background or the digit's class, per pixel (11 classes)."""

    name = "digit_mask"
    best_metric = "miou"
    train_stats = ("loss", "correct_pixels", "pixels")

    def prepare(self, config: TrainConfig, model: nn.Module | None = None) -> tuple[nn.Module, TrainingData]:
        """The model (given, a saved DigitMaskNet, or a new one on the config's backbone, 0.35 wide by default) and
        the digit masks."""
        if config.data is not None:
            raise ValueError("DigitMaskTask learns the embedded digits: leave data unset")
        if model is None and config.weights is not None:  # a DigitMaskNet saved by a run (qat fine-tunes one)
            model = load_digit_mask_net(config.weights)
        elif model is None:
            width = {} if config.width_mult is None else {"width_mult": config.width_mult}
            backbone = replace(
                MODELS[config.model or DEFAULT_BACKBONE],
                num_classes=len(CLASS_NAMES),
                dropout=config.dropout,
                input_size=config.input_size or 32,
                small_input=True if config.small_input is None else config.small_input,
                **width,
            )
            model = DigitMaskNet(backbone)
        pre = Preprocessing(input_size=config.input_size or model.config.input_size)
        model.class_names, model.preprocessing = list(CLASS_NAMES), pre
        samples, _ = load_digits_images()
        train, val = split_fraction(samples, config.val_fraction, config.seed)
        data = TrainingData(
            DigitMasks(train, pre, hflip=config.hflip), DigitMasks(val, pre), list(CLASS_NAMES), "digit masks"
        )
        return model, data

    def collate(self, items: Sequence[MaskItem | None]) -> tuple[torch.Tensor, torch.Tensor, int]:
        return collate_masks(items)

    def loss(
        self, net: nn.Module, images: torch.Tensor, masks: torch.Tensor, config: TrainConfig,
        generator: torch.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        logits = net(images).float()  # the loss in float32 under autocast
        loss = nn.functional.cross_entropy(logits, masks, label_smoothing=config.label_smoothing)
        pixels = masks.numel()
        correct = (logits.detach().argmax(1) == masks).sum()
        stats = torch.stack([loss.detach() * pixels, correct.to(loss.dtype), loss.new_tensor(pixels)])
        return loss, stats

    def summarize(self, totals: dict[str, float]) -> dict[str, float]:
        pixels = max(totals["pixels"], 1.0)
        return {"loss": totals["loss"] / pixels, "pixel_acc": totals["correct_pixels"] / pixels}

    def evaluate(
        self, model: Any, dataset: DigitMasks, batch_size: int, workers: int, device: torch.device
    ) -> MaskEvaluation:
        return evaluate_masks(model, dataset, len(CLASS_NAMES), batch_size, workers, device)

    def calibration_batch(self, data: TrainingData, count: int) -> torch.Tensor:
        """Up to ``count`` unflipped training images, spread evenly through the set."""
        plain = data.train.without_augmentation()
        taken = min(count, len(plain))
        return torch.stack([plain[i * len(plain) // taken][0] for i in range(taken)])
