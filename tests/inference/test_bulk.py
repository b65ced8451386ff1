"""Bulk inference into a results file: in order, resumed after an interruption or a SIGKILL with no gaps and no
duplicates, a half-written line cut away, and nobody's file written over."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time

import pytest

from mobilenet.data.images import image_files
from mobilenet.inference.bulk import predict_to_file
from mobilenet.registry import kind, load
from mobilenet.utils.outputs import OutputRefused
from tests.helpers.data import write_images
from tests.helpers.faults import mobilenet_command, quiet_env
from tests.helpers.models import tiny_weights

KINDS = {"classifier": "classification", "segmenter": "segmentation", "detector": "detection"}


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[str]:
    folder = tmp_path_factory.mktemp("images")
    write_images(folder, 20, (40, 30))
    return sorted(str(path) for path in folder.iterdir())


def real_predict(model_kind: str, folder):
    """The kind's own predict on a tiny model of its kind, as ``mobilenet predict`` runs it."""
    weights = folder / f"{model_kind}.safetensors"
    weights.write_bytes(tiny_weights(model_kind))
    model, task = load(weights).eval(), kind(KINDS[model_kind])
    return lambda files: task.call("predict", model, files)


class Interrupted(Exception):
    pass


def stopping_after(predict, calls: int):
    """``predict``, interrupted (as by Ctrl-C) at its call ``calls + 1``."""
    count = 0

    def run(files):
        nonlocal count
        count += 1
        if count > calls:
            raise Interrupted
        return predict(files)

    return run


@pytest.mark.parametrize("model_kind", KINDS)
def test_an_interrupted_run_resumed_equals_one_run(tmp_path, images, model_kind) -> None:
    predict = real_predict(model_kind, tmp_path)
    whole = predict_to_file(predict, images, tmp_path / "whole.jsonl", chunk=6, progress=False)
    assert (whole.written, whole.resumed, whole.errors) == (20, 0, 0)
    out = tmp_path / "resumed.jsonl"
    with pytest.raises(Interrupted):
        predict_to_file(stopping_after(predict, 2), images, out, chunk=6, progress=False)
    assert len(out.read_text().splitlines()) == 12
    resumed = predict_to_file(predict, images, out, chunk=6, progress=False)
    assert (resumed.resumed, resumed.written) == (12, 8)
    assert out.read_bytes() == (tmp_path / "whole.jsonl").read_bytes()
    assert [json.loads(line)["image"] for line in out.read_text().splitlines()] == images


def without_nulls(value):
    """A value read back from Parquet as the JSON it was: the nulls that fill a row's missing fields taken away."""
    if isinstance(value, dict):
        return {key: without_nulls(entry) for key, entry in value.items() if entry is not None}
    return [without_nulls(entry) for entry in value] if isinstance(value, list) else value


@pytest.mark.parametrize("model_kind", KINDS)
def test_a_parquet_file_holds_the_lines_and_is_written_whole_after_an_interruption(tmp_path, images, model_kind):
    parquet = pytest.importorskip("pyarrow.parquet")
    predict = real_predict(model_kind, tmp_path)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    files = [*images[:14], str(broken), *images[14:]]  # a row of an error only, and every kind's own fields
    predict_to_file(predict, files, tmp_path / "lines.jsonl", chunk=6, progress=False)
    out, journal = tmp_path / "results.parquet", tmp_path / ".results.parquet.jsonl"
    with pytest.raises(Interrupted):
        predict_to_file(stopping_after(predict, 2), files, out, chunk=6, progress=False)
    assert not out.exists() and len(journal.read_text().splitlines()) == 12
    resumed = predict_to_file(predict, files, out, chunk=6, progress=False)
    assert (resumed.resumed, resumed.written, resumed.errors) == (12, 9, 1) and not journal.exists()
    rows = [without_nulls(row) for row in parquet.read_table(out).to_pylist()]
    assert rows == [json.loads(line) for line in (tmp_path / "lines.jsonl").read_text().splitlines()]
    again = predict_to_file(predict, files, out, progress=False)
    assert (again.resumed, again.written) == (21, 0)
    with pytest.raises(OutputRefused, match="is not a results file of these images"):
        predict_to_file(predict, files[:5], out, progress=False)


def test_shards_and_datasets_are_predicted_on_by_name(tmp_path, images) -> None:
    datasets = pytest.importorskip("datasets")
    from mobilenet.classification.shards import write_shards

    folder = tmp_path / "folder" / "only"
    folder.mkdir(parents=True)
    for image in images[:6]:
        shutil.copy(image, folder)
    write_shards(folder.parent, tmp_path / "shards", shard_size=4, progress=False)
    files = sorted(str(path) for path in folder.iterdir())
    table = datasets.Dataset.from_dict({"image": files}, features=datasets.Features({"image": datasets.Image()}))
    table.save_to_disk(str(tmp_path / "table"))
    predict, lines = real_predict("classifier", tmp_path), {}
    for name in ("folder", "shards", "table"):
        predict_to_file(predict, image_files([str(tmp_path / name)]), tmp_path / f"{name}.jsonl", progress=False)
        lines[name] = [json.loads(line) for line in (tmp_path / f"{name}.jsonl").read_text().splitlines()]
    assert [line["image"] for line in lines["table"]] == [f"{tmp_path / 'table'}/{row}" for row in range(6)]
    assert [line["image"].split(":")[-1] for line in lines["shards"]] == [
        f"only/{i}.jpg" for i in (0, 1, 10, 11, 12, 13)
    ]
    assert [line["top"] for line in lines["shards"]] == [line["top"] for line in lines["folder"]]
    assert [line["top"] for line in lines["table"]] == [line["top"] for line in lines["folder"]]


def test_a_half_written_line_is_cut_away_and_written_again(tmp_path, images) -> None:
    predict = real_predict("classifier", tmp_path)
    out = tmp_path / "results.jsonl"
    predict_to_file(predict, images[:5], out, progress=False)
    whole = out.read_bytes()
    out.write_bytes(whole + b'{"image": "' + images[5].encode())  # what a kill inside a write would leave
    run = predict_to_file(predict, images, out, progress=False)
    assert (run.resumed, run.written) == (5, 15)
    lines = out.read_text().splitlines()
    assert [json.loads(line)["image"] for line in lines] == images and out.read_bytes().startswith(whole)


def test_unreadable_images_are_lines_that_say_why(tmp_path, images) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    out = tmp_path / "results.jsonl"
    run = predict_to_file(real_predict("classifier", tmp_path), [images[0], str(broken)], out, progress=False)
    first, second = (json.loads(line) for line in out.read_text().splitlines())
    assert run.errors == 1 and "top" in first and "error" in second and second["image"] == str(broken)


def test_nobodys_file_is_written_over(tmp_path, images) -> None:
    predict = real_predict("classifier", tmp_path)
    notes = tmp_path / "notes.jsonl"
    notes.write_text("my own notes\n")
    with pytest.raises(OutputRefused, match=r"is not a results file .*--force"):
        predict_to_file(predict, images, notes, progress=False)
    assert notes.read_text() == "my own notes\n"
    other = tmp_path / "other.jsonl"
    predict_to_file(predict, images[5:8], other, progress=False)
    before = other.read_bytes()
    with pytest.raises(OutputRefused, match="holds results of other images"):
        predict_to_file(predict, images, other, progress=False)
    assert other.read_bytes() == before
    with pytest.raises(OutputRefused, match="is one of the inputs"):
        predict_to_file(predict, [str(notes)], notes, progress=False)
    assert predict_to_file(predict, images, other, force=True, progress=False).written == 20
    with pytest.raises(ValueError, match=r"must end in \.jsonl .* or \.parquet"):
        predict_to_file(predict, images, tmp_path / "results.json", progress=False)


def test_sigkill_then_the_same_command_completes_the_file(tmp_path) -> None:
    """``mobilenet predict --out results.jsonl`` killed with SIGKILL, then run again: every image once, in order."""
    folder = tmp_path / "images"
    write_images(folder, 400, (40, 30))
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(tiny_weights("classifier"))
    out = tmp_path / "results.jsonl"
    command = mobilenet_command("predict", str(folder), "--weights", str(weights), "--out", str(out))
    process = subprocess.Popen(command, env=quiet_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline:  # kill once a chunk is on disk, before the end
        if out.exists() and out.stat().st_size > 0:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed: give it more images"
    kept = len(out.read_bytes().split(b"\n")) - 1
    assert 0 < kept < 400
    done = subprocess.run(command, env=quiet_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert f"{400 - kept} run now" in done.stdout and "already there" in done.stdout
    names = [json.loads(line)["image"] for line in out.read_text().splitlines()]
    assert names == sorted(str(path) for path in folder.iterdir())
