"""``mobilenet detect`` and ``mobilenet eval`` of a detector, on real COCO128 images with Google's COCO SSD TFLite
file: the JSON and the drawn boxes, mAP against pycocotools run on the same detections, and bad input in one line."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from mobilenet.cli import main
from mobilenet.detection.data import COCO80_NAMES, COCO91_TO_80
from mobilenet.detection.evaluate import class_map_by_name
from tests.helpers.data import shared_path

pytestmark = pytest.mark.shared

SSD_FILE = "weights/ssd_mobilenet_v1_075_coco_quant.tflite"
VAL_JSON = "detection/coco128/instances_val2017_from_yolo.json"
SUBSET = 16  # val images scored: all 128 take too long for the suite
SKIER = "000000000785.jpg"  # one person, on skis: among the first SUBSET
CLASSIFIER = "weights/mobilenet_v1_0.25_128_quant.tflite"
DEEPLAB = "weights/deeplabv3_mnv2_dm05_pascal_quant.tflite"


@pytest.fixture(scope="module")
def weights() -> Path:
    return shared_path(SSD_FILE)


@pytest.fixture(scope="module")
def google_names(weights: Path) -> list[str]:
    """The labels file beside Google's model: line i names column i (line 0 the background)."""
    return weights.with_name(f"{weights.stem}_labels.txt").read_text().splitlines()


def coco_subset(path: Path, images: list[dict], annotations: list[dict], categories: list[dict]) -> Path:
    """A COCO file of some val images, named for its split beside a link to their folder, as COCO lays them out."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "val2017").symlink_to(shared_path(VAL_JSON).parent / "images" / "val2017")
    target = path / "instances_val2017.json"
    target.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return target


@pytest.fixture(scope="module")
def val_subset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    coco = json.loads(shared_path(VAL_JSON).read_text())
    images = coco["images"][:SUBSET]
    ids = {image["id"] for image in images}
    annotations = [annotation for annotation in coco["annotations"] if annotation["image_id"] in ids]
    return coco_subset(tmp_path_factory.mktemp("coco"), images, annotations, coco["categories"])


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(args))
    return status, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def detected(weights: Path, val_subset: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict], Path]:
    """``mobilenet detect --json --score 0`` on the subset's images: every detection the model keeps."""
    images = [
        str(val_subset.parent / "val2017" / entry["file_name"])
        for entry in json.loads(val_subset.read_text())["images"]
    ]
    out = tmp_path_factory.mktemp("drawn")
    status, stdout, _ = run("detect", *images, "--weights", str(weights), "--score", "0", "--json", "--out", str(out))
    assert status == 0
    return [json.loads(line) for line in stdout.splitlines()], out


def iou(a: list[float], b: list[float]) -> float:
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_detect_json_names_classes_by_the_labels_file_in_image_pixels(
    detected: tuple[list[dict], Path], val_subset: Path, google_names: list[str]
) -> None:
    results, out = detected
    assert len(results) == SUBSET
    for result in results:
        assert result.keys() == {"image", "detections", "drawn"}
        assert 0 < len(result["detections"]) <= 10  # the file's own cap
        for found in result["detections"]:
            assert found.keys() == {"box", "class", "name", "score"} and len(found["box"]) == 4
            assert found["name"] == google_names[found["class"] + 1]  # 0-based: column - 1
        drawn = Image.open(result["drawn"])
        assert drawn.format == "PNG" and drawn.size == Image.open(result["image"]).size
        assert Path(result["drawn"]).parent == out
    # The skier is found as a person where COCO's annotation puts them, in the image's pixels.
    coco = json.loads(val_subset.read_text())
    (skier_id,) = [image["id"] for image in coco["images"] if image["file_name"] == SKIER]
    person = next(category["id"] for category in coco["categories"] if category["name"] == "person")
    (x, y, w, h), *_ = [
        a["bbox"] for a in coco["annotations"] if (a["image_id"], a["category_id"]) == (skier_id, person)
    ]
    best = next(r for r in results if r["image"].endswith(SKIER))["detections"][0]
    assert best["name"] == "person" and best["score"] > 0.5
    assert iou(best["box"], [x, y, x + w, y + h]) > 0.7


def test_detect_prints_boxes_and_writes_the_png(weights: Path, tmp_path: Path) -> None:
    image = shared_path(VAL_JSON).parent / "images" / "val2017" / SKIER
    status, stdout, _ = run("detect", str(image), "--weights", str(weights), "--out", str(tmp_path))
    drawn = tmp_path / f"{Path(SKIER).stem}_detections.png"
    assert status == 0 and f"-> {drawn}" in stdout and "person" in stdout
    assert Image.open(drawn).format == "PNG"


def test_eval_agrees_with_pycocotools_on_the_same_detections(
    weights: Path, val_subset: Path, detected: tuple[list[dict], Path]
) -> None:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    status, stdout, stderr = run(
        "eval", "--weights", str(weights), "--data", str(val_subset.parent), "--split", "val",
        "--max-detections", "10", "--workers", "0", "--json",
    )  # fmt: skip
    assert status == 0, stderr
    ours = json.loads(stdout)
    assert ours["n"] == SUBSET and "person" in ours["per_class"]
    assert any("classes matched by name: 80 of the data's 80" in note for note in ours["notes"])

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints as it goes
        truth = COCO(str(val_subset))
        id_of = {category["name"]: category["id"] for category in truth.dataset["categories"]}
        by_file = {image["file_name"]: image["id"] for image in truth.dataset["images"]}
        results = [
            {"image_id": by_file[Path(r["image"]).name], "category_id": id_of[d["name"]], "score": d["score"],
             "bbox": [d["box"][0], d["box"][1], d["box"][2] - d["box"][0], d["box"][3] - d["box"][1]]}
            for r in detected[0] for d in r["detections"] if d["name"] in id_of
        ]  # fmt: skip
        evaluator = COCOeval(truth, truth.loadRes(results), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    # Room for the JSON's rounding (0.01 px, scores 1e-4) and eval's clipping of boxes by under half a pixel.
    assert ours["map"] == pytest.approx(evaluator.stats[0], abs=1e-4)
    assert ours["ap50"] == pytest.approx(evaluator.stats[1], abs=1e-4)
    assert ours["map"] > 0.15  # all 128 val images: 0.224


def test_eval_reports_boxes_clipped_and_dropped_with_per_class_counts(weights: Path, tmp_path: Path) -> None:
    coco = json.loads(shared_path(VAL_JSON).read_text())
    (image,) = [entry for entry in coco["images"] if entry["file_name"] == SKIER]
    annotations = [a for a in coco["annotations"] if a["image_id"] == image["id"]]
    width, height = image["width"], image["height"]
    annotations += [
        {"id": 90001, "image_id": image["id"], "category_id": 1, "bbox": [width - 20, 10, 60, 50]},  # clipped
        {"id": 90002, "image_id": image["id"], "category_id": 1, "bbox": [10, height + 5, 30, 30]},  # outside
    ]
    data = coco_subset(tmp_path / "set", [image], annotations, coco["categories"])
    plot = tmp_path / "pr.png"
    status, stdout, stderr = run(
        "eval", "--weights", str(weights), "--data", str(data), "--workers", "0", "--plot", str(plot)
    )
    assert status == 0, stderr
    assert "on 1 images (at most 10 detections each" in stdout
    assert "1 boxes reaching out of the image, clipped" in stdout
    assert "1 boxes outside the image, dropped" in stdout
    people = sum(a["category_id"] == 1 for a in annotations) - 1  # the dropped one is not counted
    assert f"  person (1 images, {people} boxes)" in stdout
    assert Image.open(plot).format == "PNG"


def test_classes_match_by_name_as_cocos_own_ids_say(google_names: list[str]) -> None:
    mapping = class_map_by_name(google_names[1:], list(COCO80_NAMES))
    # Google's column c is COCO id c; the contiguous 1..80 numbering of that id is the data's label + 1.
    assert mapping == {coco - 1: contiguous - 1 for coco, contiguous in COCO91_TO_80.items()}
    with pytest.raises(ValueError, match="none of the model's 90 class names"):
        class_map_by_name(google_names[1:], ["RBC", "WBC", "Platelets"])


def write_image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 48), "gray").save(path)


def broken_coco(root: Path) -> Path:
    (root / "instances_val2017.json").write_text('{"images": [{"id": 1, ')
    return root / "instances_val2017.json"


def coco_unknown_class(root: Path) -> Path:
    write_image(root / "a.jpg")
    images = [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48}]
    annotations = [{"id": 7, "image_id": 1, "category_id": 99, "bbox": [1, 1, 10, 10]}]
    (root / "set.json").write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "person"}]})
    )
    return root / "set.json"


def broken_voc(root: Path) -> Path:
    write_image(root / "JPEGImages" / "a.jpg")
    (root / "Annotations").mkdir()
    (root / "Annotations" / "a.xml").write_text("<annotation><object><name>RBC</name>")
    return root


def yolo_unknown_class(root: Path) -> Path:
    write_image(root / "images" / "a.jpg")
    (root / "labels").mkdir()
    (root / "labels" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n5 0.5 0.5 0.1 0.1\n")
    (root / "classes.txt").write_text("person\ncar\n")
    return root


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (broken_coco, "is not valid JSON"),
        (coco_unknown_class, "annotation 7's category_id 99 is no category"),
        (broken_voc, "is not a VOC annotation file"),
        (yolo_unknown_class, "a.txt:2: class id 5 is outside the 2 classes 0..1"),
    ],
)
def test_bad_annotations_fail_in_one_line(
    make: Callable[[Path], Path], says: str, weights: Path, tmp_path: Path
) -> None:
    status, stdout, stderr = run("eval", "--weights", str(weights), "--data", str(make(tmp_path)), "--workers", "0")
    assert status == 2 and stdout == ""
    assert len(stderr.splitlines()) == 1 and stderr.startswith("mobilenet: error: ") and says in stderr


def test_no_class_name_in_common_fails_in_one_line(weights: Path, tmp_path: Path) -> None:
    write_image(tmp_path / "images" / "a.jpg")
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (tmp_path / "classes.txt").write_text("RBC\nWBC\n")
    status, _, stderr = run("eval", "--weights", str(weights), "--data", str(tmp_path), "--workers", "0")
    assert status == 2 and len(stderr.splitlines()) == 1
    assert "none of the model's 90 class names (person, bicycle, car, ...) is one of the data's (RBC, WBC)" in stderr


@pytest.mark.parametrize(
    ("command", "file", "says"),
    [
        ("detect", CLASSIFIER, "holds a classification model, not a detection one: run it with `mobilenet predict`"),
        ("detect", DEEPLAB, "holds a segmentation model, not a detection one: run it with `mobilenet segment`"),
        ("segment", SSD_FILE, "holds a detection model, not a segmentation one: run it with `mobilenet detect`"),
    ],
)
def test_weights_of_another_task_name_the_right_command(command: str, file: str, says: str) -> None:
    image = shared_path(VAL_JSON).parent / "images" / "val2017" / SKIER
    status, stdout, stderr = run(command, str(image), "--weights", str(shared_path(file)))
    assert status == 2 and stdout == "" and len(stderr.splitlines()) == 1 and says in stderr


def test_predict_runs_a_detector_as_detect_does(weights: Path) -> None:
    image = shared_path(VAL_JSON).parent / "images" / "val2017" / SKIER
    predicted = run("predict", str(image), "--weights", str(weights), "--json")
    detected = run("detect", str(image), "--weights", str(weights), "--json")
    assert predicted[0] == detected[0] == 0 and predicted[1] == detected[1] and "person" in predicted[1]


def test_detection_flags_on_a_classifier_fail_in_one_line(tmp_path: Path) -> None:
    classifier = shared_path(CLASSIFIER)
    status, _, stderr = run("eval", "--weights", str(classifier), "--data", str(tmp_path), "--split", "test")
    assert status == 2 and len(stderr.splitlines()) == 1
    assert f"--split is for detection models: {classifier} holds a classification one" in stderr
