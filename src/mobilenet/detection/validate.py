"""Scoring a detector on a labelled set with COCO's own code: images resized as ``detect`` resizes them, boxes
scaled back to each image's pixels, every process scoring its share and pycocotools scoring them all."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from mobilenet.data.images import load_image, to_tensor
from mobilenet.detection.data import DetectionRecord
from mobilenet.detection.evaluate import DetectionEvaluation, Detections, coco_evaluate
from mobilenet.detection.predict import Detector, evaluating, input_device, resize_to_input, run_detector
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
    model: Detector,
    records: Sequence[DetectionRecord],
    classes: Sequence[str],
    batch_size: int = 16,
    workers: int = 0,
    device: torch.device | None = None,
    progress: bool = False,
    max_detections: int | None = None,
    class_map: Mapping[int, int] | None = None,
) -> DetectionEvaluation:
    """COCO mAP of ``model`` on ``records``: at most ``max_detections`` per image (default: the model's own).

    ``class_map``: the records' label of each model class that the data has (see :func:`class_map_by_name`);
    detections of the others are dropped. Without it the model's classes are the records' labels.
    ``model``: an SSD, or a deployed one (``mobilenet.inference.deploy``), which runs on the CPU.
    """
    relabel = None if class_map is None else label_table(class_map, model.config.num_classes - 1)
    device = device or input_device(model)
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    dataset = ResizedImages(records, model.preprocessing)
    loader = DataLoader(
        Subset(dataset, range(rank, len(dataset), world)), batch_size, num_workers=workers, collate_fn=collate_images
    )
    found: dict[int, Detections] = {}
    with evaluating(model):
        for batch in tqdm(loader, desc="detect", unit="batch", disable=not progress, leave=False):
            if not batch:
                continue
            inputs = torch.stack([item[0] for item in batch]).to(device)
            results = run_detector(model, inputs, [item[2] for item in batch], model.config.score_threshold)
            for (_, index, _), (boxes, scores, labels) in zip(batch, results, strict=True):
                boxes, scores, labels = boxes.cpu().numpy(), scores.cpu().numpy(), labels.cpu().numpy()
                if relabel is not None:
                    labels = relabel[labels]
                    boxes, scores, labels = boxes[labels >= 0], scores[labels >= 0], labels[labels >= 0]
                found[index] = (boxes, scores, labels)
    if world > 1:  # every process scores all images, so each returns the same evaluation
        shares: list[dict[int, Detections]] = [{} for _ in range(world)]
        dist.all_gather_object(shares, found)
        found = {index: detections for share in shares for index, detections in share.items()}
    limit = model.config.max_detections if max_detections is None else max_detections
    return coco_evaluate(records, classes, [found.get(i) for i in range(len(records))], limit)


def _class_key(name: str) -> str:
    return " ".join(name.lower().split())


def class_map_by_name(model_classes: Sequence[str], data_classes: Sequence[str]) -> dict[int, int]:
    """The data's label of each model class (both 0-based, no background) whose name the data has too, case and
    spacing aside; the others (COCO's unused "???" ids, say) are left out. No name in common is a clear error."""
    label_of = {_class_key(name): label for label, name in enumerate(data_classes)}
    found = {index: label_of[key] for index, name in enumerate(model_classes) if (key := _class_key(name)) in label_of}
    if not found:
        raise ValueError(
            f"none of the model's {len(model_classes)} class names ({_first(model_classes)}) is one of the data's "
            f"({_first(data_classes)}): name the model's classes as the data does "
            "(a <weights>_labels.txt beside the weights, one name a line, background first)"
        )
    return found


def _first(names: Sequence[str]) -> str:
    return ", ".join(names[:3]) + ", ..." * (len(names) > 3)


def label_table(class_map: Mapping[int, int], num_classes: int) -> np.ndarray:
    """``class_map`` as an array over the model's ``num_classes`` object classes: the data's label, or -1."""
    table = np.full(num_classes, -1, dtype=np.int64)
    for index, label in class_map.items():
        if not 0 <= index < num_classes:
            raise ValueError(f"class_map maps class {index}, beyond the model's {num_classes} object classes")
        table[index] = label
    return table
