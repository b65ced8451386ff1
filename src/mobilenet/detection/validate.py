"""Scoring a detector on a labelled set with COCO's own code: images resized as ``detect`` resizes them, boxes
scaled back to each image's pixels, every process scoring its share and pycocotools scoring them all."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from mobilenet.data.images import load_image, to_tensor
from mobilenet.detection.data import DetectionRecord
from mobilenet.detection.evaluate import DetectionEvaluation, Detections, coco_evaluate
from mobilenet.detection.predict import resize_to_input, run_detector
from mobilenet.nn.preprocessing import Preprocessing

Item = tuple[torch.Tensor, int, tuple[int, int]]  # (model input, record index, the image's (width, height))


class ResizedImages(Dataset):
    """The records' images as model inputs, resized whole; an unreadable image is None (scored as skipped)."""

    def __init__(self, records: Sequence[DetectionRecord], pre: Preprocessing) -> None:
        self.records, self.pre = list(records), pre

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> Item | None:
        try:
            image = load_image(self.records[index].image)
        except (OSError, ValueError):
            return None
        return to_tensor(resize_to_input(image, self.pre), self.pre), index, image.size


def collate_images(items: list[Item | None]) -> list[Item]:
    return [item for item in items if item is not None]


@torch.inference_mode()
def evaluate_detector(
    model: nn.Module,
    records: Sequence[DetectionRecord],
    classes: Sequence[str],
    batch_size: int = 16,
    workers: int = 0,
    device: torch.device | None = None,
    progress: bool = False,
    max_detections: int | None = None,
) -> DetectionEvaluation:
    """COCO mAP of ``model`` on ``records``: at most ``max_detections`` per image (default: the model's own)."""
    device = device or next(model.parameters()).device
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    dataset = ResizedImages(records, model.preprocessing)
    loader = DataLoader(
        Subset(dataset, range(rank, len(dataset), world)), batch_size, num_workers=workers, collate_fn=collate_images
    )
    was_training = model.training
    model.eval()
    found: dict[int, Detections] = {}
    try:
        for batch in tqdm(loader, desc="detect", unit="batch", disable=not progress, leave=False):
            if not batch:
                continue
            inputs = torch.stack([item[0] for item in batch]).to(device)
            results = run_detector(model, inputs, [item[2] for item in batch], model.config.score_threshold)
            for (_, index, _), (boxes, scores, labels) in zip(batch, results, strict=True):
                found[index] = (boxes.cpu().numpy(), scores.cpu().numpy(), labels.cpu().numpy())
    finally:
        model.train(was_training)
    if world > 1:  # every process scores all images, so each returns the same evaluation
        shares: list[dict[int, Detections]] = [{} for _ in range(world)]
        dist.all_gather_object(shares, found)
        found = {index: detections for share in shares for index, detections in share.items()}
    limit = model.config.max_detections if max_detections is None else max_detections
    return coco_evaluate(records, classes, [found.get(i) for i in range(len(records))], limit)
