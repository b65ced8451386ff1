"""Detection data in one form: records of boxes and labels read from COCO JSON, YOLO txt or PASCAL VOC XML.

Boxes are xyxy in image pixels (float32), labels 0-based over the set's classes. A :class:`DataReport` counts what real
data gets wrong: boxes of no area dropped, boxes reaching out of the image clipped (dropped if nothing is left), label
files without an image dropped, images without labels kept as negatives, VOC difficult and COCO crowd boxes dropped (a
record has no ignore flag: kept, they would count as clear boxes). VOC coordinates are taken as written (1-based), as
TF's Object Detection API takes them. A file that does not parse fails in one line.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import takewhile
from pathlib import Path

import numpy as np
from PIL import Image

from mobilenet.data.images import IMAGE_SUFFIXES, Stored, labelled_members, opened_image
from mobilenet.data.tables import Table, is_table
from mobilenet.data.tars import is_shards, shard_classes, shard_paths
from mobilenet.utils.files import nonempty_lines

# COCO's category ids (index = id; 0 is TF's background column, "n/a" the ids that no annotation uses), and its 80
# classes numbered 1..80 (YOLO's 0..79 plus one, as COCO128's JSON does) <-> COCO's own ids 1..90.
COCO91_NAMES = (
    "background", "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "n/a", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse",
    "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "n/a", "backpack", "umbrella", "n/a", "n/a", "handbag",
    "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove",
    "skateboard", "surfboard", "tennis racket", "bottle", "n/a", "wine glass", "cup", "fork", "knife", "spoon",
    "bowl", "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake",
    "chair", "couch", "potted plant", "bed", "n/a", "dining table", "n/a", "n/a", "toilet", "n/a", "tv", "laptop",
    "mouse", "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "n/a",
    "book", "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip
COCO80_TO_91 = dict(enumerate((i for i, name in enumerate(COCO91_NAMES) if i and name != "n/a"), start=1))
COCO91_TO_80 = {coco: contiguous for contiguous, coco in COCO80_TO_91.items()}
COCO80_NAMES = tuple(COCO91_NAMES[i] for i in COCO80_TO_91.values())


@dataclass(frozen=True, eq=False)  # arrays have no single truth value: records compare by identity
class DetectionRecord:
    image: Path | Stored  # a file, a shard's member or a table's row
    width: int
    height: int
    boxes: np.ndarray  # float32 [n, 4] xyxy pixels
    labels: np.ndarray  # int64 [n], 0-based into the set's classes


@dataclass
class DataReport:
    """What reading a set found: sizes, and every box and file that was dropped, clipped or kept as a negative."""

    images: int = 0
    boxes: int = 0
    negatives: int = 0  # images kept with no box
    zero_area: int = 0  # boxes dropped: no positive width or height
    clipped: int = 0  # boxes cut back to the image (by more than half a pixel)
    outside: int = 0  # boxes dropped: nothing of them inside the image
    ignored: int = 0  # VOC difficult and COCO crowd boxes dropped
    labels_without_images: list[str] = field(default_factory=list)  # dropped
    images_without_labels: list[str] = field(default_factory=list)  # kept as negatives

    def lines(self) -> list[str]:
        counts = {"of zero area, dropped": self.zero_area, "outside the image, dropped": self.outside}
        counts |= {"reaching out of the image, clipped": self.clipped, "difficult or crowd, dropped": self.ignored}
        files = {"label files without an image, dropped": self.labels_without_images}
        files["images without a label file, kept as negatives"] = self.images_without_labels
        found = [f"{self.images} images ({self.negatives} without boxes), {self.boxes} boxes"]
        found += [f"{count} boxes {what}" for what, count in counts.items() if count]
        return found + [f"{len(names)} {what}: {', '.join(names[:4])}{' ...' * (len(names) > 4)}"
                        for what, names in files.items() if names]  # fmt: skip


@dataclass
class DetectionSet:
    records: list[DetectionRecord]
    classes: list[str]
    report: DataReport

    def __len__(self) -> int:
        return len(self.records)


def _record(image: Path | Stored, size: tuple[int, int], boxes, labels, report: DataReport) -> DetectionRecord:
    """A record of boxes cleaned as the module says, counted into ``report``."""
    width, height = int(size[0]), int(size[1])
    raw = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    degenerate = (raw[:, 2] <= raw[:, 0]) | (raw[:, 3] <= raw[:, 1])
    clipped = raw.clip(0, [width, height, width, height])
    empty = ~degenerate & ((clipped[:, 2] <= clipped[:, 0]) | (clipped[:, 3] <= clipped[:, 1]))
    keep = ~degenerate & ~empty
    report.zero_area += int(degenerate.sum())
    report.outside += int(empty.sum())
    report.clipped += int((keep & (abs(clipped - raw) > 0.5).any(axis=1)).sum())  # less is rounding (COCO128)
    report.images += 1
    report.boxes += int(keep.sum())
    report.negatives += int(not keep.any())
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)[keep]
    return DetectionRecord(image, width, height, clipped[keep].astype(np.float32), labels)


def _coco_images_dir(json_path: Path, first_image: str) -> Path:
    """Where a COCO file's images are: beside it, or in a folder named for its split (``train2017``) nearby."""
    split = re.search(r"(train|val|test|minival)\d*", json_path.stem)
    names = ["", "images"] + ([split[0], f"images/{split[0]}"] if split else [])
    for folder in (base / name for base in (json_path.parent, json_path.parent.parent) for name in names):
        if (folder / first_image).is_file():
            return folder
    raise ValueError(f"the images of {json_path} ({first_image}, ...) are not beside it: pass images_dir")


def coco_detection(json_path: str | Path, images_dir: str | Path | None = None) -> DetectionSet:
    """A COCO instances file: its categories sorted by id become labels 0.., named as the file names them."""
    json_path, report = Path(json_path), DataReport()
    try:
        dataset = json.loads(json_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{json_path} is not valid JSON ({error}): is the file complete?") from None
    if not isinstance(dataset, dict) or not {"images", "annotations", "categories"} <= dataset.keys():
        raise ValueError(f"{json_path} is not a COCO instances file: it needs images, annotations and categories")
    try:
        categories = sorted(dataset["categories"], key=lambda category: category["id"])
        label_of = {category["id"]: label for label, category in enumerate(categories)}
        boxes, labels = defaultdict(list), defaultdict(list)
        for annotation in dataset["annotations"]:
            if annotation.get("iscrowd", 0):
                report.ignored += 1
            elif (category := annotation["category_id"]) not in label_of:
                raise ValueError(f"{json_path}: annotation {annotation['id']}'s category_id {category} is no category")
            else:
                x, y, w, h = annotation["bbox"]
                boxes[annotation["image_id"]].append((x, y, x + w, y + h))
                labels[annotation["image_id"]].append(label_of[category])
        if images_dir is None and dataset["images"]:
            images_dir = _coco_images_dir(json_path, dataset["images"][0]["file_name"])
        records = []
        for entry in dataset["images"]:
            path = Path(images_dir or json_path.parent) / entry["file_name"]
            if not path.is_file():
                report.labels_without_images.append(entry["file_name"])
                continue
            size = (entry["width"], entry["height"])
            records.append(_record(path, size, boxes[entry["id"]], labels[entry["id"]], report))
    except (KeyError, TypeError) as error:
        raise ValueError(f"{json_path} is not a COCO instances file: {type(error).__name__} {error}") from None
    return DetectionSet(records, [category["name"] for category in categories], report)


def _image_size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as image:
            return image.size
    except OSError as error:
        raise ValueError(f"cannot read the size of image {path}: {error}") from None


def yolo_detection(images_dir: str | Path, labels_dir: str | Path, classes: Sequence[str]) -> DetectionSet:
    """YOLO labels: one ``<stem>.txt`` per image, a line ``class cx cy w h`` per box, normalized to the image."""
    report, images_dir = DataReport(), Path(images_dir)
    if not images_dir.is_dir():  # COCO128's README: some unzip tools write a symbolic link out as a text file
        raise ValueError(f"{images_dir} is no folder: if an unzip tool wrote a link as a text file, make the link")
    images = {p.stem: p for p in sorted(images_dir.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
    labels = {p.stem: p for p in sorted(Path(labels_dir).glob("*.txt"))}
    report.labels_without_images = [labels[stem].name for stem in sorted(labels.keys() - images.keys())]
    report.images_without_labels = [image.name for stem, image in images.items() if stem not in labels]
    records = []
    for stem, image in images.items():
        size = _image_size(image)
        lines = enumerate(labels[stem].read_text().splitlines() if stem in labels else [], start=1)
        rows = [_yolo_row(line, f"{labels[stem]}:{number}", len(classes)) for number, line in lines if line.strip()]
        table = np.asarray(rows, dtype=np.float64).reshape(-1, 5)
        centre, half = table[:, 1:3] * size, table[:, 3:5] * size / 2
        records.append(_record(image, size, np.hstack([centre - half, centre + half]), table[:, 0], report))
    return DetectionSet(records, list(classes), report)


def _yolo_row(line: str, where: str, num_classes: int) -> list[float]:
    try:
        row = [float(value) for value in line.split()]
    except ValueError:
        row = []
    if len(row) != 5 or not np.isfinite(row).all() or row[0] != int(row[0]):
        raise ValueError(f"{where}: expected 'class cx cy w h' (class an integer), got {line.strip()!r}")
    if not 0 <= row[0] < num_classes:
        raise ValueError(f"{where}: class id {int(row[0])} is outside the {num_classes} classes 0..{num_classes - 1}")
    return row


def _voc_root(path: Path) -> Path | None:
    """The devkit folder holding Annotations/: ``path`` itself or its one child that does (BCCD/, VOC2007/)."""
    return next((folder for folder in (path, *sorted(path.iterdir())) if (folder / "Annotations").is_dir()), None)


def _voc_objects(xml: Path, keep_difficult: bool, report: DataReport) -> tuple[tuple[int, int] | None, list, list]:
    """(the size the file gives, or None, boxes, class names) of one VOC annotation file."""
    try:
        root = ET.parse(xml).getroot()
        width, height = (int(float(root.findtext(f"size/{tag}") or 0)) for tag in ("width", "height"))
    except (ET.ParseError, ValueError) as error:
        raise ValueError(f"{xml} is not a VOC annotation file ({error})") from None
    boxes, names = [], []
    for number, item in enumerate(root.iter("object"), start=1):
        try:
            difficult = int(float(item.findtext("difficult") or 0))
            box = [float(item.findtext(f"bndbox/{tag}")) for tag in ("xmin", "ymin", "xmax", "ymax")]
            name = item.findtext("name").strip()
        except (TypeError, ValueError, AttributeError):
            raise ValueError(f"{xml}: object {number} lacks a name or a numeric bndbox xmin/ymin/xmax/ymax") from None
        if difficult and not keep_difficult:
            report.ignored += 1
        else:
            boxes.append(box)
            names.append(name)
    return ((width, height) if width > 0 and height > 0 else None), boxes, names


def voc_detection(
    root: str | Path, split: str | None = None, classes: Sequence[str] | None = None, keep_difficult: bool = False
) -> DetectionSet:
    """A PASCAL VOC folder (Annotations/, JPEGImages/, ImageSets/Main/<split>.txt), or one that holds one.

    Without ``classes``, the names found in the files, sorted; without ``split``, every image and annotation file.
    """
    root = _voc_root(Path(root)) or Path(root)
    annotations, report = root / "Annotations", DataReport()
    images = {p.stem: p for p in sorted((root / "JPEGImages").glob("*")) if p.suffix.lower() in IMAGE_SUFFIXES}
    listing = root / "ImageSets" / "Main" / f"{split}.txt"
    if split is None:
        ids = sorted({p.stem for p in annotations.glob("*.xml")} | images.keys())
    elif listing.is_file():
        ids = [line.split()[0] for line in listing.read_text().splitlines() if line.strip()]
    else:
        raise ValueError(f"no {listing}: the splits there are {sorted(p.stem for p in listing.parent.glob('*.txt'))}")
    found = []
    for stem in ids:
        xml = annotations / f"{stem}.xml"
        if stem not in images:  # an id listed with no file at all is dropped with them
            report.labels_without_images.append(xml.name if xml.is_file() else f"{stem} (listed, no files)")
        elif not xml.is_file():
            report.images_without_labels.append(images[stem].name)
            found.append((images[stem], None, [], [], xml))
        else:
            found.append((images[stem], *_voc_objects(xml, keep_difficult, report), xml))
    classes = list(classes) if classes is not None else sorted({name for *_, names, _ in found for name in names})
    label_of = {name: label for label, name in enumerate(classes)}
    records = []
    for image, size, boxes, names, xml in found:
        if unknown := [name for name in names if name not in label_of]:
            raise ValueError(f"{xml}: class {unknown[0]!r} is not one of the {len(classes)} classes {classes}")
        records.append(_record(image, size or _image_size(image), boxes, [label_of[name] for name in names], report))
    return DetectionSet(records, classes, report)


def _split_match(name: str, split: str) -> bool:
    return re.search(rf"(^|[_\-.]){re.escape(split)}\d*($|[_\-.])", name) is not None


def _yolo_classes(root: Path) -> list[str] | None:
    """Class names from ``classes.txt``, or the ``names:`` of a data YAML (a list, or a ``0: name`` mapping)."""
    if (root / "classes.txt").is_file():
        return nonempty_lines((root / "classes.txt").read_text())
    for config in sorted(root.glob("*.yaml")):
        lines = config.read_text().splitlines()
        for number, line in enumerate(lines):
            if line.startswith("names:") and (inline := line[len("names:") :].strip()).startswith("["):
                return [name.strip().strip("'\"") for name in inline.strip("[]").split(",")]
            if line.startswith("names:"):
                items = (re.fullmatch(r"\s+(?:-|\d+\s*:)\s*(.+?)\s*", item) for item in lines[number + 1 :])
                return [match[1].strip("'\"") for match in takewhile(lambda match: match is not None, items)]
    return None


def label_count(records: Sequence[DetectionRecord]) -> int:
    """How many classes the records' labels span (the highest plus one): a set's classes where no names are given."""
    return max((int(record.labels.max()) for record in records if len(record.labels)), default=-1) + 1


ANNOTATION = "json"  # a sample's boxes in a shard: ``<key>.json`` beside ``<key>.jpg``


def shard_detection(source: str | Path) -> DetectionSet:
    """The records of detection shards (see ``mobilenet shard --task detection``): each image with a JSON of its
    ``width``, ``height``, ``boxes`` (xyxy pixels) and ``labels`` (0-based); the classes in ``classes.txt``."""
    shards, report, records = shard_paths(source), DataReport(), []
    for image, annotation in labelled_members(shards, ANNOTATION, "detection"):
        try:
            note = json.loads(annotation.read_bytes())
            size, boxes, labels = (note["width"], note["height"]), note["boxes"], note["labels"]
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{annotation} is no annotation of boxes ({error}): expected width, height, "
                             "boxes and labels") from None  # fmt: skip
        records.append(_record(image, size, boxes, labels, report))
    return DetectionSet(records, shard_classes(shards, label_count(records)), report)


def object_lists(objects: dict | list) -> tuple[list, list]:
    """A row's objects as the Hub stores them, a dict of lists or a list of dicts, as (bboxes, categories)."""
    if not objects:
        return [], []
    if isinstance(objects, list):
        objects = {key: [item[key] for item in objects] for key in objects[0]}
    boxes = next((objects[key] for key in ("bbox", "bboxes", "boxes") if key in objects), None)
    labels = next((objects[key] for key in ("category", "categories", "label", "labels") if key in objects), None)
    if boxes is None or labels is None:
        raise ValueError(f"objects with {', '.join(objects)}: expected a bbox and a category for each")
    return boxes, labels


def class_names(feature: object) -> list[str] | None:
    """The names of the first ``ClassLabel`` inside a ``datasets`` feature (nested in dicts and lists), or None."""
    if type(feature).__name__ == "ClassLabel":
        return list(feature.names)  # type: ignore[attr-defined]
    inner = feature.values() if isinstance(feature, dict) else [getattr(feature, "feature", None)]
    return next((names for item in inner if item is not None and (names := class_names(item)) is not None), None)


def table_detection(source: str | Path) -> DetectionSet:
    """The records of a Hugging Face detection dataset (see :mod:`mobilenet.data.tables`), as the Hub lays them out
    (cppe-5 and the ``datasets`` object-detection guide): an image column, and an ``objects`` column of ``bbox``es
    in COCO's [x, y, width, height] pixels and ``category`` class labels; ``width`` and ``height`` columns if any
    (else each image's header says)."""
    table, report, records = Table(source), DataReport(), []
    columns = table.dataset.column_names
    if "objects" not in columns:
        raise ValueError(f"{source} has no 'objects' column (its columns: {', '.join(columns)}): a detection dataset "
                         "holds each image's boxes as objects with a bbox and a category")  # fmt: skip
    images, objects = table.rows(table.image_column()), table.values("objects")
    sized = {"width", "height"} <= set(columns)  # else each image's header says
    widths, heights = (table.values("width"), table.values("height")) if sized else ([], [])
    for index, (image, found) in enumerate(zip(images, objects, strict=True)):
        try:
            boxes, labels = object_lists(found)
        except ValueError as error:
            raise ValueError(f"row {index} of {source} has {error}") from None
        xyxy = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) @ XYWH_TO_XYXY
        if sized:
            size = (widths[index], heights[index])
        else:
            with opened_image(image) as opened:
                size = opened.size
        records.append(_record(image, size, xyxy, labels, report))
    names = class_names(table.dataset.features["objects"])
    return DetectionSet(records, names or [str(i) for i in range(label_count(records))], report)


XYWH_TO_XYXY = np.array([[1, 0, 1, 0], [0, 1, 0, 1], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=np.float64)  # row @ it


def detection_dataset(path: str | Path, split: str | None = None) -> DetectionSet:
    """Whatever detection data ``path`` holds: a COCO JSON file (or a folder with one per split), a VOC folder,
    a YOLO folder (``images/<split>``, ``labels/<split>``, classes in ``classes.txt`` or a data YAML), shards
    (a folder of them, one, a pattern; or a folder of ``<split>/`` shard folders), or a Hugging Face dataset
    (saved, Arrow, Parquet or ``hf:NAME``; a saved one's ``<split>/``)."""
    part = Path(path) / split if split is not None and Path(path).is_dir() else None
    if part is not None and (is_shards(part) or is_table(part)):
        return detection_dataset(part)
    if is_table(path):
        return table_detection(path)
    if is_shards(path):
        return shard_detection(path)
    path = Path(path)
    if path.is_file() and path.suffix == ".json":
        return coco_detection(path)
    if not path.is_dir():
        raise ValueError(f"{path} is neither a COCO .json file nor a folder: pass a dataset's file or folder")
    if _voc_root(path) is not None:
        return voc_detection(path, split)
    jsons = [p for p in sorted([*path.glob("*.json"), *path.glob("annotations/*.json")])
             if split is None or _split_match(p.stem, split)]  # fmt: skip
    jsons = [p for p in jsons if p.stem.startswith("instances_")] or jsons  # not COCO's captions or keypoints
    if len(jsons) > 1:
        names = ", ".join(p.name for p in jsons)
        raise ValueError(f"{path} holds several COCO files ({names}): pick one with split= (--split in the CLI)")
    if jsons:
        return coco_detection(jsons[0])
    if (path / "labels").is_dir() and (classes := _yolo_classes(path)):
        images, labels = path / "images", path / "labels"
        if split is not None:
            folders = [p.name for p in labels.iterdir() if p.is_dir() and _split_match(p.name, split)]
            if len(folders) != 1:
                raise ValueError(f"no single folder for split {split!r} under {labels}: found {folders}")
            images, labels = images / folders[0], labels / folders[0]
        return yolo_detection(images, labels, classes)
    raise ValueError(f"{path} holds no COCO .json, VOC Annotations/ nor YOLO labels/ (with classes.txt or a YAML)")
