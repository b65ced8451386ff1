"""The page of ``mobilenet serve`` in a real browser (Chromium, driven by Playwright): an image dropped on it, or
chosen, shows Google's published models' results drawn: the right top class, a mask with its legend, boxes.

Needs the real weights in ../shared and a Chromium (Debian's package, which .ci/run installs; or
``$MOBILENET_CHROMIUM``); the screenshots are kept in ``$MOBILENET_ARTIFACTS`` (default ``test-artifacts/``)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.data import ROOT, shared_path

pytestmark = pytest.mark.shared

# Chromium on a machine with no network and no display (the flags of a headless CI browser).
FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]  # fmt: skip
MODELS = {
    "classifier": "weights/mobilenet_v2_1.0_224_quant.tflite",
    "deeplab": "weights/deeplabv3_mnv2_pascal_quant.tflite",
    "ssd": "weights/ssd_mobilenet_v1_075_coco_quant.tflite",
}


def chromium() -> str:
    found = os.environ.get("MOBILENET_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.skip("needs Chromium: apt-get install chromium (as .ci/run does), or set MOBILENET_CHROMIUM")
    return found


@pytest.fixture(scope="module")
def page_url() -> Iterator[str]:
    from mobilenet.serve import load_models, parse_spec, running

    specs = [parse_spec(f"{name}={shared_path(path)}") for name, path in MODELS.items()]
    with running(load_models(specs, backend="torch")) as url:
        yield url


@pytest.fixture(scope="module")
def browser_page(page_url: str) -> Iterator:
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright: pip install -e '.[dev]'")
    executable = chromium()
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(page_url)
        page.wait_for_selector("#model option", state="attached")
        yield page
        browser.close()


def artifacts() -> Path:
    folder = Path(os.environ.get("MOBILENET_ARTIFACTS", ROOT / "test-artifacts")) / "serve"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def drop(page, image: Path) -> None:
    """Drop the file on the page as a user's drag and drop does (a DataTransfer holding it)."""
    page.evaluate(
        """([bytes, name]) => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([new Uint8Array(bytes)], name, {type: "image/jpeg"}));
            const dropped = new DragEvent("drop", {dataTransfer: transfer, bubbles: true});
            document.getElementById("drop").dispatchEvent(dropped);
        }""",
        [list(image.read_bytes()), image.name],
    )


def show(page, model: str, image: Path, dropped: bool) -> None:
    page.select_option("#model", model)
    page.evaluate("document.getElementById('result').dataset.state = 'empty'")
    if dropped:
        drop(page, image)
    else:
        page.set_input_files("#file", str(image))
    page.wait_for_selector("#result[data-state='done'], #result[data-state='error']", state="attached", timeout=60_000)
    assert page.get_attribute("#result", "data-state") == "done", page.inner_text("#status")


def test_a_dropped_photo_shows_its_top_class(browser_page) -> None:
    show(browser_page, "classifier", shared_path("imagenet-sample/n01530575_brambling.JPEG"), dropped=True)
    names = browser_page.locator("#bars .name").all_inner_texts()
    assert len(names) == 5 and names[0].startswith("brambling")
    browser_page.screenshot(path=artifacts() / "classifier.png", full_page=True)


def test_a_chosen_photo_shows_its_mask_and_legend(browser_page) -> None:
    image = shared_path("segmentation/coral-bird/bird_segmentation.bmp")
    show(browser_page, "deeplab", image, dropped=False)
    legend = browser_page.locator("#legend li").all_inner_texts()
    assert any(entry.startswith("bird ") for entry in legend), legend
    from PIL import Image

    assert browser_page.get_attribute("#result", "data-mask") == "{}x{}".format(*Image.open(image).size)
    browser_page.screenshot(path=artifacts() / "deeplab.png", full_page=True)


def test_a_room_photo_shows_boxes_of_what_is_in_it(browser_page) -> None:
    image = shared_path("detection/coco128/images/val2017/000000000139.jpg")
    show(browser_page, "ssd", image, dropped=True)
    boxes = browser_page.locator("#boxes li").all_inner_texts()
    coco = json.loads(shared_path("detection/coco128/instances_val2017_from_yolo.json").read_text())
    (image_id,) = [entry["id"] for entry in coco["images"] if entry["file_name"] == image.name]
    names = {category["id"]: category["name"] for category in coco["categories"]}
    annotated = {names[box["category_id"]] for box in coco["annotations"] if box["image_id"] == image_id}
    found = {box.rsplit(" ", 5)[0] for box in boxes}  # "dining table 0.41 [x0, y0, x1, y1]" -> "dining table"
    assert len(boxes) >= 3 and found <= annotated, (boxes, annotated)
    browser_page.screenshot(path=artifacts() / "ssd.png", full_page=True)
