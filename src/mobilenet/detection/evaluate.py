"""Scoring a detector on a labelled set with COCO's own code: images resized as ``detect`` resizes them, boxes
scaled back to each image's pixels, every process scoring its share and pycocotools scoring them all."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from mobilenet.data.images import load_image, to_tensor
from mobilenet.data.shards import batches, gathered
from mobilenet.detection.data import DetectionRecord, detection_dataset
from mobilenet.detection.metrics import DetectionEvaluation, Detections, coco_evaluate
from mobilenet.detection.predict import Detector, input_device, object_names, resize_to_input, run_detector
from mobilenet.nn.preprocessing import Preprocessing
from mobilenet.utils.modes import evaluating

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
    limit = model.config.max_detections if max_detections is None else max_detections
    dataset = ResizedImages(records, model.preprocessing)
    found: dict[int, Detections] = {}
    with evaluating(model):
        for batch in batches(dataset, batch_size, workers, collate_images, "detect", progress):
            if not batch:
                continue
            inputs = torch.stack([item[0] for item in batch]).to(device)
            sizes = [item[2] for item in batch]
            results = run_detector(model, inputs, sizes, model.config.score_threshold, limit)
            for (_, index, _), (boxes, scores, labels) in zip(batch, results, strict=True):
                boxes, scores, labels = boxes.cpu().numpy(), scores.cpu().numpy(), labels.cpu().numpy()
                if relabel is not None:
                    labels = relabel[labels]
                    boxes, scores, labels = boxes[labels >= 0], scores[labels >= 0], labels[labels >= 0]
                found[index] = (boxes, scores, labels)
    # Every process scores all images, so each returns the same evaluation.
    found = {index: detections for share in gathered(found) for index, detections in share.items()}
    return coco_evaluate(records, classes, [found.get(i) for i in range(len(records))], limit)


def evaluate_files(
    load: Callable[[int], Any],
    data: str | Path,
    batch_size: int = 16,
    workers: int = 2,
    progress: bool = False,
    split: str | None = None,
    max_detections: int | None = None,
) -> DetectionEvaluation:
    """COCO's mAP, AP50, AP75 and per-class AP of a detector on a labelled set (a COCO .json, or a COCO, VOC or YOLO
    folder; ``split`` picks one of its splits), the model's classes matched to the data's by name (detections of
    classes the data lacks are dropped). ``load(images)`` gives the model (told how many images it will run on)."""
    dataset = detection_dataset(data, split)  # first: a bad annotation file fails before a model is built
    model = load(len(dataset.records))
    names = object_names(model)
    class_map = class_map_by_name(names, dataset.classes)
    result = evaluate_detector(
        model, dataset.records, dataset.classes, batch_size, workers, progress=progress, max_detections=max_detections,
        class_map=class_map,
    )  # fmt: skip
    result.notes = [*dataset.report.lines(), matching_line(names, dataset.classes, class_map)]
    return result


def matching_line(model_classes: list[str], data_classes: list[str], class_map: dict[int, int]) -> str:
    """How the model's classes met the data's: how many matched, and the data's classes the model cannot find."""
    missing = sorted(set(range(len(data_classes))) - set(class_map.values()))
    line = f"classes matched by name: {len(set(class_map.values()))} of the data's {len(data_classes)}"
    line += f" (the model has {len(model_classes)}; detections of the others are dropped)"
    if missing:
        shown = ", ".join(data_classes[label] for label in missing[:4]) + " ..." * (len(missing) > 4)
        line += f"; no model class is named {shown} (their boxes count as missed)"
    return line


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
