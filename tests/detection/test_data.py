"""Detection data: COCO128's two encodings of one annotation set read alike, COCO's ids against Google's label map,
BCCD's counts and quirks, bad input in one line, and SSD's augmentation keeping the boxes on their pixels."""

from __future__ import annotations

import colorsys
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mobilenet.detection.augment import (
    DetectionSample,
    hsv_to_rgb,
    resize_record,
    resize_sample,
    rgb_to_hsv,
    ssd_augment,
)
from mobilenet.detection.data import (
    COCO80_NAMES,
    COCO80_TO_91,
    COCO91_NAMES,
    COCO91_TO_80,
    DetectionRecord,
    coco_detection,
    detection_dataset,
    voc_detection,
    yolo_detection,
)
from tests.helpers.data import shared_path


@pytest.mark.shared
@pytest.mark.parametrize("split", ["train", "val"])
def test_coco128_json_and_yolo_txt_give_the_same_boxes(split: str) -> None:
    root = shared_path("detection/coco128")
    coco = coco_detection(root / f"instances_{split}2017_from_yolo.json")
    labels = root / "object_detection" / "labels" / f"{split}2017"
    yolo = yolo_detection(root / "images" / f"{split}2017", labels, COCO80_NAMES)
    assert coco.classes == yolo.classes == list(COCO80_NAMES)
    by_name = {record.image.name: record for record in yolo.records}
    assert sorted(by_name) == sorted(record.image.name for record in coco.records)
    for record in coco.records:
        other = by_name[record.image.name]
        assert (record.width, record.height) == (other.width, other.height)  # the JSON's sizes, the JPEGs' headers
        np.testing.assert_array_equal(record.labels, other.labels)
        np.testing.assert_allclose(record.boxes, other.boxes, atol=0.01)  # 6 decimals of YOLO's normalized values
    assert coco.report.boxes == yolo.report.boxes == {"train": 929, "val": 898}[split]
    assert coco.report.images == yolo.report.images == 128
    if split == "train":  # the known holes of COCO128: read as real data is read
        assert yolo.report.labels_without_images == ["000000000656.txt", "000000000659.txt"]
        assert yolo.report.images_without_labels == ["000000000250.jpg", "000000000508.jpg"]
        assert coco.report.negatives == yolo.report.negatives == 2
        assert any("2 label files without an image" in line for line in yolo.report.lines())


@pytest.mark.shared
def test_detection_dataset_recognises_coco_and_yolo_layouts(tmp_path: Path) -> None:
    root = shared_path("detection/coco128")
    coco = detection_dataset(root, split="val")
    assert coco.records[0].image.parent == root / "images" / "val2017"
    with pytest.raises(ValueError, match="several COCO files"):
        detection_dataset(root)
    # COCO128's YOLO folder links its images (object_detection/images -> ../images): a real link reads as a
    # folder, and a link an unzip tool wrote out as a text file is named as such, however ../shared holds it.
    linked, flattened = tmp_path / "linked", tmp_path / "flattened"
    for folder in (linked, flattened):
        folder.mkdir()
        (folder / "labels").symlink_to(root / "object_detection" / "labels")
        (folder / "config.yaml").write_text((root / "object_detection" / "config.yaml").read_text())
    (linked / "images").symlink_to(root / "images")
    (flattened / "images").write_text("../images")
    yolo = detection_dataset(linked, split="val")
    assert yolo.classes == list(COCO80_NAMES)  # from the YAML's names
    assert yolo.report.boxes == coco.report.boxes
    with pytest.raises(ValueError, match=r"is no folder: .*make the link"):
        detection_dataset(flattened, split="val")


def test_coco_contiguous_ids_map_to_cocos_own() -> None:
    assert len(COCO91_NAMES) == 91 and len(COCO80_NAMES) == 80
    known = {1: (1, "person"), 2: (2, "bicycle"), 12: (13, "stop sign"), 40: (44, "bottle"), 80: (90, "toothbrush")}
    for contiguous, (coco_id, name) in known.items():
        assert COCO80_TO_91[contiguous] == coco_id and COCO91_NAMES[coco_id] == name
        assert COCO91_TO_80[coco_id] == contiguous
    assert sorted(set(range(1, 91)) - set(COCO91_TO_80)) == [12, 26, 29, 30, 45, 66, 68, 69, 71, 83]


@pytest.mark.shared
def test_coco_ids_agree_with_googles_label_map_and_coco128() -> None:
    # The TFLite detector's label map: line i names COCO's id i ("???" where unused, line 0 the background).
    lines = shared_path("weights/ssd_mobilenet_v1_075_coco_quant_labels.txt").read_text().splitlines()
    assert [name.replace("???", "n/a") for name in lines[1:]] == list(COCO91_NAMES[1:])
    categories = json.loads(shared_path("detection/coco128/instances_val2017_from_yolo.json").read_text())["categories"]
    assert all(COCO91_NAMES[COCO80_TO_91[category["id"]]] == category["name"] for category in categories)


@pytest.mark.shared
def test_bccd_counts_per_split_and_what_is_dropped() -> None:
    root = shared_path("detection/bccd")
    expected = {"train": (205, 2804, 1), "val": (87, 1137, 1), "test": (72, 945, 0), None: (364, 4886, 2)}
    for split, (images, boxes, zero_area) in expected.items():
        found = detection_dataset(root, split)
        report = found.report
        assert found.classes == ["Platelets", "RBC", "WBC"]
        assert (report.images, report.boxes, report.zero_area, report.negatives) == (images, boxes, zero_area, 0)
        assert report.clipped == report.outside == report.ignored == 0
        assert not report.labels_without_images and not report.images_without_labels
    counts = np.bincount(np.concatenate([record.labels for record in found.records]), minlength=3)
    assert counts.tolist() == [361, 4153, 372]  # Platelets, RBC, WBC
    # The README's 4,888 boxes: the two dropped are points (xmin == xmax, ymin == ymax) in these two files
    xml = {path.stem: path.read_text() for path in (root / "BCCD" / "Annotations").glob("*.xml")}
    assert sum(text.count("<object>") for text in xml.values()) == 4888
    short = sorted(r.image.stem for r in found.records if xml[r.image.stem].count("<object>") != len(r.boxes))
    assert short == ["BloodImage_00338", "BloodImage_00343"]


def write_image(path: Path, size: tuple[int, int] = (64, 48)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (90, 20, 200)).save(path)


def voc_folder(root: Path, objects: str, size: str = "<size><width>64</width><height>48</height></size>") -> Path:
    write_image(root / "JPEGImages" / "a.jpg")
    (root / "Annotations").mkdir(parents=True)
    (root / "Annotations" / "a.xml").write_text(f"<annotation>{size}{objects}</annotation>")
    return root


def voc_object(name: str, box: tuple, difficult: int = 0) -> str:
    corners = "".join(
        f"<{tag}>{value}</{tag}>" for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), box, strict=True)
    )
    return f"<object><name>{name}</name><difficult>{difficult}</difficult><bndbox>{corners}</bndbox></object>"


def test_boxes_clipped_dropped_and_counted(tmp_path: Path) -> None:
    objects = [("cat", (10, 10, 20, 20)), ("dog", (50, 40, 80, 60)), ("cat", (70, 10, 90, 20)), ("dog", (5, 5, 5, 9))]
    root = voc_folder(tmp_path, "".join(voc_object(*item) for item in objects) + voc_object("cat", (1, 1, 9, 9), 1))
    write_image(tmp_path / "JPEGImages" / "b.jpg")  # no annotation file: a negative
    found = voc_detection(root)
    report = found.report
    assert (report.images, report.boxes, report.negatives) == (2, 2, 1)
    assert (report.clipped, report.outside, report.zero_area, report.ignored) == (1, 1, 1, 1)
    assert report.images_without_labels == ["b.jpg"]
    np.testing.assert_array_equal(found.records[0].boxes, [[10, 10, 20, 20], [50, 40, 64, 48]])
    assert found.classes == ["cat", "dog"] and found.records[0].labels.tolist() == [0, 1]
    assert voc_detection(root, keep_difficult=True).report.boxes == 3


def one_line_error(call, match: str) -> None:
    with pytest.raises(ValueError, match=match) as error:
        call()
    assert "\n" not in str(error.value)


def test_bad_input_fails_in_one_line(tmp_path: Path) -> None:
    document = {"images": [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48}], "annotations": []}
    document["categories"] = [{"id": 1, "name": "cat"}]
    truncated = tmp_path / "instances.json"
    truncated.write_text(json.dumps(document)[:-30])
    one_line_error(lambda: coco_detection(truncated, tmp_path), r"instances\.json is not valid JSON")
    document["annotations"] = [{"id": 7, "image_id": 1, "category_id": 5, "bbox": [1, 1, 5, 5]}]
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps(document))
    one_line_error(lambda: coco_detection(unknown, tmp_path), r"unknown\.json: annotation 7's category_id 5")

    root = voc_folder(tmp_path / "voc", "<object><name>cat</name><bndbox>")
    one_line_error(lambda: voc_detection(root), r"a\.xml is not a VOC annotation file")
    (root / "Annotations" / "a.xml").write_text(f"<annotation>{voc_object('cat', (1, 2, 'x', 4))}</annotation>")
    one_line_error(lambda: voc_detection(root), r"a\.xml: object 1 lacks a name or a numeric bndbox")

    write_image(tmp_path / "yolo" / "images" / "a.jpg")
    (tmp_path / "yolo" / "labels").mkdir()
    (tmp_path / "yolo" / "labels" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n99 0.5 0.5 0.1 0.1\n")
    read = lambda: yolo_detection(tmp_path / "yolo" / "images", tmp_path / "yolo" / "labels", ["a", "b", "c"])  # noqa: E731
    one_line_error(read, r"a\.txt:2: class id 99 is outside the 3 classes 0\.\.2")
    (tmp_path / "yolo" / "labels" / "a.txt").write_text("0 0.5 0.5 0.2\n")
    one_line_error(read, r"a\.txt:1: expected 'class cx cy w h'")


def patch_image() -> tuple[Image.Image, np.ndarray]:
    """A white rectangle on black, and its box."""
    pixels = np.zeros((120, 160, 3), np.uint8)
    pixels[30:70, 50:90] = 255
    return Image.fromarray(pixels), np.array([[50.0, 30.0, 90.0, 70.0]])


def bright_box(sample: DetectionSample) -> np.ndarray:
    """The box around the pixels brighter than halfway (the rectangle's edges, however distorted and resized)."""
    gray = sample.pixels.float().mean(0).numpy()
    rows, columns = np.nonzero(gray > (gray.min() + gray.max()) / 2)
    return np.array([columns.min(), rows.min(), columns.max() + 1, rows.max() + 1])


def test_augmented_boxes_frame_their_pixels() -> None:
    image, box = patch_image()
    for seed in range(40):
        sample = ssd_augment(image, box, np.array([2]), 96, np.random.default_rng(seed), fill=(0, 0, 0))
        assert sample.pixels.shape == (3, 96, 96) and sample.pixels.dtype == torch.uint8
        assert sample.labels.tolist() == [2]
        np.testing.assert_allclose(sample.boxes[0].numpy() * 96, bright_box(sample), atol=1.0)


def test_flip_mirrors_boxes_and_a_seed_repeats() -> None:
    image, box = patch_image()
    flipped = 0
    for seed in range(12):
        plain = ssd_augment(image, box, np.array([0]), 64, np.random.default_rng(seed), hflip=False)
        maybe = ssd_augment(image, box, np.array([0]), 64, np.random.default_rng(seed))
        again = ssd_augment(image, box, np.array([0]), 64, np.random.default_rng(seed))
        assert torch.equal(maybe.pixels, again.pixels) and torch.equal(maybe.boxes, again.boxes)
        if not torch.equal(maybe.pixels, plain.pixels):  # the flip is the last draw: all else is the same
            flipped += 1
            assert torch.equal(maybe.pixels, plain.pixels.flip(-1))
            x0, y0, x1, y1 = plain.boxes[0]
            torch.testing.assert_close(maybe.boxes[0], torch.stack([1 - x1, y0, 1 - x0, y1]))
    assert 0 < flipped < 12
    first, other = (ssd_augment(image, box, np.array([0]), 64, np.random.default_rng(seed)) for seed in (1, 2))
    assert not torch.equal(first.pixels, other.pixels)


def test_augmented_boxes_stay_in_the_unit_square_with_area() -> None:
    rng = np.random.default_rng(0)
    corner = rng.uniform(0, 150, (8, 2))
    boxes = np.hstack([corner, corner + rng.uniform(1, 60, (8, 2))]).clip(0, [200, 150, 200, 150])
    image = Image.fromarray(rng.integers(0, 256, (150, 200, 3), dtype=np.uint8))
    for seed in range(30):
        sample = ssd_augment(image, boxes, np.arange(8), 48, np.random.default_rng(seed))
        found = sample.boxes
        assert len(found) > 0 and found.dtype == torch.float32 and sample.labels.dtype == torch.int64
        assert ((found >= 0) & (found <= 1)).all()
        assert ((found[:, 2] > found[:, 0]) & (found[:, 3] > found[:, 1])).all()


def test_hsv_conversion_matches_colorsys() -> None:
    rgb = np.random.default_rng(1).random((200, 3))
    hsv = rgb_to_hsv(rgb)
    np.testing.assert_allclose(hsv, [colorsys.rgb_to_hsv(*value) for value in rgb], atol=1e-12)
    np.testing.assert_allclose(hsv_to_rgb(hsv), rgb, atol=1e-12)


def test_eval_resize_is_a_plain_resize(tmp_path: Path) -> None:
    image, box = patch_image()
    sample = resize_sample(image, box, np.array([1]), 80)
    torch.testing.assert_close(sample.boxes, torch.tensor([[50 / 160, 30 / 120, 90 / 160, 70 / 120]]))
    expected = np.array(image.resize((80, 80), Image.Resampling.BILINEAR))
    assert torch.equal(sample.pixels, torch.from_numpy(expected).permute(2, 0, 1))
    image.save(tmp_path / "patch.png")
    record = DetectionRecord(tmp_path / "patch.png", 160, 120, box.astype(np.float32), np.array([1]))
    assert torch.equal(resize_record(record, 80).pixels, sample.pixels)
    wrong = DetectionRecord(tmp_path / "patch.png", 640, 480, box.astype(np.float32), np.array([1]))
    one_line_error(lambda: resize_record(wrong, 80), re.escape("patch.png is 160x120 but its annotation says 640x480"))
