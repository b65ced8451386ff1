"""Every error names the real problem, in the command line's words: files of another kind or of no kind, damaged
TFLite files, images too large to decode, sizes too large to allocate, flags that go together, missing lists.

Each case is run through ``mobilenet.cli.main`` in this process and checked as the fault suite checks a refusal
(exit 2, one line, no traceback, nothing changed), and for the words of its line.
"""

from __future__ import annotations

import json
import random
import struct
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers.data import png_bytes, shared_path
from tests.helpers.faults import assert_refused, changes, run_in_process, snapshot
from tests.helpers.models import tiny_weights


def refused(folder: Path, argv: list[str]) -> str:
    """The one line of a clean refusal that left ``folder`` as it was."""
    before = snapshot(folder)
    line = assert_refused(run_in_process(argv), (2,))
    assert changes(before, snapshot(folder)) == [], argv
    return line


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    found = {"image": tmp_path / "photo.png", "text": tmp_path / "notes.jpg"}
    found["image"].write_bytes(png_bytes(40, 48))
    found["text"].write_text("not an image, nor weights")
    for kind in ("classifier", "segmenter", "detector"):
        found[kind] = tmp_path / f"{kind}.safetensors"
        found[kind].write_bytes(tiny_weights(kind))
    return found


def test_a_file_of_another_kind_names_the_command_that_runs_it(tmp_path, files) -> None:
    line = refused(tmp_path, ["segment", str(files["image"]), "--weights", str(files["detector"])])
    assert line.endswith("holds a detection model, not a segmentation one: run it with `mobilenet detect`")
    line = refused(tmp_path, ["detect", str(files["image"]), "--weights", str(files["segmenter"])])
    assert line.endswith("holds a segmentation model, not a detection one: run it with `mobilenet segment`")


def test_a_file_that_holds_no_model_is_not_called_a_classifier(tmp_path, files) -> None:
    line = refused(tmp_path, ["detect", str(files["image"]), "--weights", str(files["text"])])
    assert "notes.jpg is not a weights file: give a .safetensors" in line and "classif" not in line
    graph = tmp_path / "other.onnx"  # an ONNX file that is not ours
    graph.write_bytes(b"\x08\x07\x12\x04test")
    line = refused(tmp_path, ["detect", str(files["image"]), "--weights", str(graph)])
    assert "other.onnx" in line and "classif" not in line
    state = tmp_path / "weights.pth"
    state.write_bytes(b"PK\x03\x04 cut")
    line = refused(tmp_path, ["segment", str(files["image"]), "--weights", str(state)])
    assert "holds no segmentation model (a classification one at most)" in line


@settings(max_examples=12, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(seed=st.integers(0, 2**16), cut=st.booleans())
def test_a_damaged_tflite_file_is_refused_as_damaged(tmp_path, seed: int, cut: bool) -> None:
    raw = shared_path("weights/mobilenet_v1_0.25_128_quant.tflite").read_bytes()
    rng = random.Random(seed)
    if cut:  # anywhere but its unused tail
        damaged = raw[: rng.randrange(8, len(raw) * 9 // 10)]
    else:  # bytes of its tables changed: the head and the tail hold the flatbuffer's offsets and shapes
        damaged = bytearray(raw)
        for _ in range(16):
            where = rng.choice([rng.randrange(8, 4096), rng.randrange(len(raw) - 60000, len(raw))])
            damaged[where] = rng.randrange(256)
    path = tmp_path / f"damaged-{seed}-{cut}.tflite"
    path.write_bytes(bytes(damaged))
    before = snapshot(tmp_path)
    outcome = run_in_process(["convert", str(path), str(tmp_path / "out.safetensors")])
    if not cut and outcome.code == 0:  # changed bytes that only change weights: a file that still reads
        (tmp_path / "out.safetensors").unlink()
        return
    line = assert_refused(outcome, (2,))
    assert changes(before, snapshot(tmp_path)) == []
    assert "is a damaged TFLite file" in line or "is not a TFLite file" in line, line


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` pixels and holds almost none: what a decompression bomb looks like
    to a decoder before it decodes."""
    rows = zlib.compress(b"\x00" + b"\x00" * 3)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def test_huge_images_are_reported_each_and_the_others_predicted(tmp_path, files) -> None:
    bomb, large = tmp_path / "bomb.png", tmp_path / "large.png"
    bomb.write_bytes(png_header(20000, 20000))  # over twice Pillow's limit: refused before decoding
    large.write_bytes(png_header(12000, 12000))  # over the limit: Pillow warns (here: cut short, so unreadable)
    argv = ["predict", str(bomb), str(files["image"]), str(large), "--weights", str(files["classifier"]), "--json"]
    outcome = run_in_process(argv)
    assert outcome.code == 1, outcome.describe()  # some images unreadable, the rest predicted
    results = [json.loads(line) for line in outcome.stdout.splitlines()]
    assert [("error" in result) for result in results] == [True, False, True]
    assert "more than 178,956,970 pixels" in results[0]["error"]
    assert "DecompressionBomb" not in outcome.stderr and "Warning" not in outcome.stderr, outcome.stderr


def test_sizes_that_cannot_fit_are_refused_before_allocating(tmp_path) -> None:
    line = refused(tmp_path, ["profile", "mobilenet_v2_100", "--resolution", "100000"])
    assert "image(s) of 100000x100000 need about" in line and "lower the batch or the resolution" in line
    line = refused(tmp_path, ["bench", "--widths", "0.35", "--batch", "100000000", "--precisions", "int8"])
    assert "100000000 image(s) of 224x224 need about" in line


def test_a_folder_of_images_is_its_images(tmp_path, files) -> None:
    folder = tmp_path / "album"
    (folder / "inner").mkdir(parents=True)
    for name in ("b.png", "inner/a.png"):
        (folder / name).write_bytes(png_bytes(40, 48, seed=len(name)))
    outcome = run_in_process(["predict", str(folder), "--weights", str(files["classifier"]), "--json"])
    assert outcome.code == 0, outcome.describe()
    assert [json.loads(line)["image"] for line in outcome.stdout.splitlines()] == [
        str(folder / "b.png"),
        str(folder / "inner" / "a.png"),
    ]
    empty = tmp_path / "empty"
    empty.mkdir()
    outcome = run_in_process(["predict", str(empty), "--weights", str(files["classifier"])])
    assert outcome.code == 1 and "is a folder, not an image, and it holds no image files" in outcome.stderr


def test_flags_that_go_together_and_files_that_are_missing_are_named(tmp_path, files) -> None:
    image, classifier = str(files["image"]), str(files["classifier"])
    line = refused(tmp_path, ["predict", image, "--weights", classifier, "--precision", "int8"])
    assert line.endswith("--precision int8 calibrates on images: add --calibration DIR (a few hundred real images)")
    line = refused(tmp_path, ["predict", image, "--weights", classifier, "--calibration", str(tmp_path)])
    assert "--calibration is for --precision int8 alone" in line
    voc = tmp_path / "voc"
    for folder in ("JPEGImages", "SegmentationClass"):
        (voc / folder).mkdir(parents=True)
    line = refused(tmp_path, ["eval", "--weights", str(files["segmenter"]), "--data", str(voc), "--ids", "/nope.txt"])
    assert "the list of image ids /nope.txt is not a file" in line and "Errno" not in line


def test_published_names_need_no_model_flag(tmp_path, monkeypatch, files) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "deeplabv3_mnv2_dm05_pascal_quant.tflite").symlink_to(
        shared_path("weights/deeplabv3_mnv2_dm05_pascal_quant.tflite")
    )
    (cache / "mobilenet_v1_0.25_128_quant.tflite").symlink_to(shared_path("weights/mobilenet_v1_0.25_128_quant.tflite"))
    monkeypatch.setenv("MOBILENET_CACHE", str(cache))
    image = str(files["image"])
    segmented = run_in_process(["segment", image, "--weights", "deeplabv3_mobilenet_v2_050.coral_uint8_voc", "--json"])
    assert segmented.code == 0, segmented.describe()
    assert "classes" in json.loads(segmented.stdout)
    predicted = run_in_process(["predict", image, "--weights", "mobilenet_v1_025.coral_uint8_128", "--json"])
    assert predicted.code == 0, predicted.describe()
    assert len(json.loads(predicted.stdout)["top"]) == 5
