"""Segmentation data: (image, mask) pairs from a VOC devkit folder or a folder of image and mask files,
COCO's panoptic category ids mapped to PASCAL VOC's classes, and DeepLab's evaluation protocol.

Masks are checked as they are read, because a wrong mask does not fail: it silently scores wrong.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F
from torch.utils.data import Dataset

from mobilenet.data.images import IMAGE_SUFFIXES, Stored, labelled_members, load_image
from mobilenet.data.tables import Table, is_table
from mobilenet.data.tars import is_shards, shard_paths
from mobilenet.utils.files import nonempty_lines

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
CLASSES_FILE = "classes.txt"  # a set's own classes, one name a line: the line's index is the mask value
IGNORE_INDEX = 255  # VOC's void border: scored by no metric
CROP = 513  # DeepLab's evaluation crop for PASCAL VOC: every VOC image (at most 500x500) fits
PAD_PIXEL = 128  # the mean pixel: 0 after DeepLab's normalization (pixel / 127.5 - 1)
Pair = tuple[Path | Stored, Path | Stored]  # an image and its mask: files, members of a shard or rows of a table

# COCO category id -> VOC class, as torchvision's segmentation reference (references/segmentation, CAT_LIST).
# The ids are COCO's official ones, which the panoptic categories and COCO128's semantic masks use (its config.yaml:
# airplane 5, bicycle 2, bird 16, boat 9, bottle 44, bus 6, car 3, cat 17, chair 62, dining table 67, dog 18,
# horse 19, motorcycle 4, person 1, potted plant 64, sheep 20, couch 63, train 7, tv 72; cow 21 lies between
# sheep 20 and elephant 22). Not those of COCO128's instances_*_from_yolo.json, which numbers its 80 classes 1..80.
COCO_TO_VOC = {5: 1, 2: 2, 16: 3, 9: 4, 44: 5, 6: 6, 3: 7, 17: 8, 62: 9, 21: 10, 67: 11, 18: 12, 19: 13, 4: 14,
               1: 15, 64: 16, 20: 17, 63: 18, 7: 19, 72: 20}  # fmt: skip
# Ignored rather than background: 0 is COCO's "unlabeled"; 189 is panoptic "table-merged", stuff that holds tables
# which VOC would call diningtable. Every other COCO class (things and stuff) is VOC background.
COCO_IGNORED = (0, 189)


def coco_to_voc_table() -> torch.Tensor:
    """A lookup table (256 entries) from a COCO panoptic category id to its VOC class, background or ignore."""
    table = torch.zeros(256, dtype=torch.long)
    table[list(COCO_IGNORED)] = IGNORE_INDEX
    table[list(COCO_TO_VOC)] = torch.tensor(list(COCO_TO_VOC.values()))
    return table


def dataset_classes(root: str | Path) -> list[str]:
    """The classes of the set at ``root``: the ``classes.txt`` in it, or in the folder above (a root of ``train/`` and
    ``val/`` lists them for both), one name a line, the first the mask value 0; else PASCAL VOC's 21."""
    found = [folder / CLASSES_FILE for folder in (Path(root), Path(root).parent) if (folder / CLASSES_FILE).is_file()]
    if not found:
        return list(VOC_CLASSES)
    listed = found[0]
    names = nonempty_lines(listed.read_text())
    if len(names) < 2 or len(set(names)) != len(names):
        raise ValueError(f"{listed} names {len(names)} classes ({len(set(names))} different): list at least two, "
                         "each once, one a line, the background's (mask value 0) first")  # fmt: skip
    return names


def read_mask(path: Path | Stored) -> torch.Tensor:
    """A mask file's (or a shard member's) class indices as an int64 (H, W) tensor: a palette PNG's indices, or 8-bit
    gray values."""
    with Image.open(path if isinstance(path, str | Path) else io.BytesIO(path.read_bytes())) as mask:
        if mask.mode not in ("P", "L"):
            raise ValueError(f"mask {path} has mode {mask.mode}: expected class indices (palette or 8-bit gray)")
        return torch.from_numpy(np.asarray(mask, dtype=np.int64).copy())


class SegmentationPairs(Dataset):
    """(RGB image, int64 mask) pairs read from files, each mask checked against its image and the classes.

    ``label_map`` (a lookup table, e.g. :func:`coco_to_voc_table`) maps a file's values to classes. An
    unreadable image yields ``None`` and a warning (counted as skipped); a bad mask is an error.
    """

    def __init__(
        self,
        pairs: Sequence[Pair],
        classes: Sequence[str] = VOC_CLASSES,
        label_map: torch.Tensor | None = None,
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        self.pairs, self.classes = list(pairs), list(classes)
        self.label_map, self.ignore_index = label_map, ignore_index

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[Image.Image, torch.Tensor] | None:
        image_path, mask_path = self.pairs[index]
        try:
            image = load_image(image_path)
        except (OSError, ValueError) as error:
            warnings.warn(f"skipped: {error}", stacklevel=2)
            return None
        mask = read_mask(mask_path)
        if self.label_map is not None:
            mask = self.label_map[mask]
        if (mask.shape[1], mask.shape[0]) != image.size:
            raise ValueError(
                f"mask {mask_path} is {mask.shape[1]}x{mask.shape[0]} but its image {image_path} is "
                f"{image.size[0]}x{image.size[1]}"
            )
        values = mask.unique()
        bad = values[(values >= len(self.classes)) & (values != self.ignore_index)]
        if len(bad):
            raise ValueError(
                f"mask {mask_path} has values {bad[:5].tolist()} outside the {len(self.classes)} classes 0.."
                f"{len(self.classes) - 1} (and {self.ignore_index}, ignored): a color mask, or another class list?"
            )
        return image, mask


def voc_pairs(root: str | Path, ids: str | Path | None = None) -> list[tuple[Path, Path]]:
    """``root/JPEGImages/<id>.jpg`` with ``root/SegmentationClass/<id>.png`` (the VOC devkit layout).

    The ids are those of the file ``ids`` (one a line, as ``ImageSets/Segmentation/val.txt``), else of
    ``root/ids.txt`` when there is one, else of every image.
    """
    root = Path(root)
    images, masks = root / "JPEGImages", root / "SegmentationClass"
    if not images.is_dir() or not masks.is_dir():
        raise FileNotFoundError(f"{root} is no VOC folder: expected {images} and {masks}")
    ids = root / "ids.txt" if ids is None and (root / "ids.txt").exists() else ids
    if ids is None:
        names = sorted(p.stem for p in images.glob("*.jpg"))
    elif not Path(ids).is_file():
        raise FileNotFoundError(f"the list of image ids {ids} is not a file: pass a text file of ids, one a line")
    else:
        names = nonempty_lines(Path(ids).read_text())
        missing = [name for name in names if not (images / f"{name}.jpg").exists()]
        if missing:
            example = images / f"{missing[0]}.jpg"
            raise FileNotFoundError(f"{len(missing)} images listed in {ids} are missing, e.g. {example}")
    pairs = [(images / f"{name}.jpg", masks / f"{name}.png") for name in names]
    check_masks_exist(pairs)
    return pairs


def folder_pairs(images: str | Path, masks: str | Path, skip_unlabelled: bool = False) -> list[tuple[Path, Path]]:
    """Every image under ``images`` with the mask of the same name (any suffix) under ``masks``.

    An image without a mask is an error, unless ``skip_unlabelled`` (sets that label only some images).
    """
    images, masks = Path(images), Path(masks)
    by_stem = {p.stem: p for p in sorted(masks.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
    files = sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no images in {images}")
    pairs = [(p, by_stem.get(p.stem, masks / f"{p.stem}.png")) for p in files]
    if skip_unlabelled:
        return [(image, mask) for image, mask in pairs if mask.exists()]
    check_masks_exist(pairs)
    return pairs


def check_masks_exist(pairs: Sequence[tuple[Path, Path]]) -> None:
    """Fail up front, naming one, when images have no mask: not an hour into an evaluation."""
    missing = [(image, mask) for image, mask in pairs if not mask.exists()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} images have no mask, e.g. {missing[0][0]}: expected {missing[0][1]}")


def coco128_voc(root: str | Path, split: str = "val2017") -> SegmentationPairs:
    """COCO128's semantic masks (``semantic_segmentation/masks``, 100 of the 128 images) as VOC's 21 classes."""
    root = Path(root)
    pairs = folder_pairs(root / "images" / split, root / "semantic_segmentation/masks" / split, skip_unlabelled=True)
    return SegmentationPairs(pairs, label_map=coco_to_voc_table())


MASK = "seg.png"  # a mask's type in a shard: ``<key>.seg.png`` beside ``<key>.jpg``


def shard_pairs(source: str | Path) -> list[Pair]:
    """The (image, mask) pairs of segmentation shards (see ``mobilenet shard --task segmentation``), in order."""
    return list(labelled_members(shard_paths(source), MASK, "segmentation"))


MASK_COLUMNS = ("mask", "annotation", "label", "segmentation")  # what the Hub's segmentation sets call their masks


def table_pairs(source: str | Path) -> list[Pair]:
    """The (image, mask) pairs of a Hugging Face dataset (see :mod:`mobilenet.data.tables`): its image column and
    its other ``Image`` column, masks of class indices (palette or 8-bit gray PNGs, as the Hub stores them)."""
    table = Table(source)
    image = table.image_column()
    masks = [column for column in table.columns_of("Image") if column != image]
    if not masks:
        raise ValueError(f"{source} has one column of images ({image}): a segmentation dataset has a second, its masks")
    mask = next((column for column in masks if any(word in column for word in MASK_COLUMNS)), masks[0])
    return list(zip(table.rows(image), table.rows(mask), strict=True))


def pairs_of(source: str | Path) -> Sequence[Pair]:
    """The pairs of a VOC folder (see :func:`voc_pairs`), of its shards (a folder of them, one, or a pattern) or of
    a Hugging Face dataset (saved, Arrow, Parquet or ``hf:NAME``)."""
    if is_table(source):
        return table_pairs(source)
    return shard_pairs(source) if is_shards(source) else voc_pairs(source)


def segmentation_dataset(root: str | Path, ids: str | Path | None = None) -> SegmentationPairs:
    """The pairs of a folder as it is laid out: VOC's devkit (``JPEGImages/``, ``SegmentationClass/``, an optional
    ids list), its shards, a Hugging Face dataset (see :func:`pairs_of`), or COCO128's (``images/val2017``,
    ``semantic_segmentation/masks/val2017``, mapped to VOC's classes)."""
    if is_shards(root) or is_table(root):
        return SegmentationPairs(pairs_of(root))
    root = Path(root)
    if (root / "JPEGImages").is_dir():
        return SegmentationPairs(voc_pairs(root, ids), dataset_classes(root))
    if (root / "semantic_segmentation").is_dir():
        return coco128_voc(root)
    raise FileNotFoundError(
        f"{root} is neither a VOC folder (JPEGImages/ and SegmentationClass/) nor COCO128's (semantic_segmentation/)"
    )


@dataclass(frozen=True)
class Padded:
    """An image as DeepLab evaluates it: ``pixels`` (3, crop, crop) uint8 hold it at the top left.

    ``inside`` is its (height, width) in the crop, ``size`` its own (they differ when it was scaled down).
    """

    pixels: torch.Tensor
    inside: tuple[int, int]
    size: tuple[int, int]
    mask: torch.Tensor | None = None


def pad_to_crop(image: Image.Image, mask: torch.Tensor | None = None, crop: int = CROP) -> Padded:
    """DeepLab's evaluation input: the image padded at the bottom and right with the mean pixel 128 to
    ``crop`` x ``crop``, and its mask (if given) with the ignore index 255.

    DeepLab's own code fails on an image larger than its crop; here one is scaled down to fit (bilinear,
    aspect kept; the mask by nearest neighbour), and :func:`crop_back` scales the prediction back up.
    """
    width, height = image.size
    if max(width, height) > crop:
        scale = crop / max(width, height)
        fitted = (min(crop, round(width * scale)), min(crop, round(height * scale)))
        image = image.resize(fitted, Image.Resampling.BILINEAR)
    canvas = torch.full((3, crop, crop), PAD_PIXEL, dtype=torch.uint8)
    inside = (image.size[1], image.size[0])
    canvas[:, : inside[0], : inside[1]] = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)
    padded_mask = None
    if mask is not None:
        padded_mask = torch.full((crop, crop), IGNORE_INDEX, dtype=torch.long)
        padded_mask[: inside[0], : inside[1]] = resize_classes(mask, inside)
    return Padded(canvas, inside, (height, width), padded_mask)


def crop_back(prediction: torch.Tensor, padded: Padded) -> torch.Tensor:
    """Class indices (crop, crop) back on the image: cropped to it, scaled (nearest) to its size if it was scaled."""
    return resize_classes(prediction[: padded.inside[0], : padded.inside[1]], padded.size)


def resize_classes(classes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """An (H, W) class map at another (height, width), nearest neighbour; as it is when the size is its own."""
    if tuple(classes.shape) == size:
        return classes
    return F.interpolate(classes[None, None].float(), size=size, mode="nearest-exact")[0, 0].to(classes.dtype)
