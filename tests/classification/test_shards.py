"""Tar shards of labelled images: written in webdataset's layout from a class folder, read back as the same samples,
and trained and scored on exactly as the folder is."""

from __future__ import annotations

import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mobilenet.classification.augment import Augmentation, AugmentedImages
from mobilenet.classification.data import LabelledImages, scan_folder, scan_labelled
from mobilenet.classification.shards import write_shards
from mobilenet.data.tars import expand_braces, is_shards, shard_paths
from mobilenet.nn.preprocessing import Preprocessing
from mobilenet.utils.outputs import OutputRefused
from tests.helpers.runs import (
    TINY,
    assert_sigkill_then_resume_is_bitwise_equal,
    assert_torchrun_matches_accumulation,
    assert_trained_and_scored_alike,
    cli,
)
from tests.helpers.samples import SAMPLES


def class_folder(root: Path, per_class: int = 7) -> Path:
    """Three classes of small real-looking pictures (a tint each, noise), JPEGs and one PNG."""
    rng = np.random.default_rng(0)
    for label, tint in enumerate(((60, 0, -40), (-40, 0, 60), (0, 50, 0))):
        folder = root / ("cat", "dog", "owl")[label]
        folder.mkdir(parents=True)
        for index in range(per_class):
            pixels = np.clip(rng.integers(0, 200, (48, 64, 3)) + np.array(tint) + 40, 0, 255).astype(np.uint8)
            name = f"{index}.png" if (label, index) == (1, 3) else f"{index}.v{label}.jpg"  # a dot in the stem
            Image.fromarray(pixels).save(folder / name)
    return root


def test_shards_hold_the_files_unchanged_in_webdatasets_layout(tmp_path) -> None:
    source = class_folder(tmp_path / "source")
    written = write_shards(source, tmp_path / "out", shard_size=8, progress=False)
    assert (written.samples, written.what, len(written.shards)) == (21, "images of 3 classes", 3)
    assert [Path(s).name for s in written.shards] == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    assert (tmp_path / "out" / "classes.txt").read_text().split() == ["cat", "dog", "owl"]
    with tarfile.open(written.shards[0]) as tar:
        assert tar.getnames()[:2] == ["cat/0_v0.jpg", "cat/0_v0.cls"]  # a key ends at its first dot: dots replaced
        assert tar.extractfile("cat/0_v0.jpg").read() == (source / "cat" / "0.v0.jpg").read_bytes()
        assert tar.extractfile("cat/0_v0.cls").read() == b"0"
    again = write_shards(source, tmp_path / "again", shard_size=8, progress=False)
    assert all(Path(a).read_bytes() == Path(b).read_bytes() for a, b in zip(written.shards, again.shards, strict=True))


def test_shards_read_back_as_the_folder_from_a_folder_a_pattern_or_one_file(tmp_path) -> None:
    source = class_folder(tmp_path / "source")
    write_shards(source, tmp_path / "out", shard_size=8, progress=False)
    files, classes = scan_folder(source)
    pattern = str(tmp_path / "out" / "shard-{000000..000002}.tar")
    assert expand_braces("a-{08..10}-{x,y}.tar") == ["a-08-x.tar", "a-08-y.tar", "a-09-x.tar", "a-09-y.tar",
                                                     "a-10-x.tar", "a-10-y.tar"]  # fmt: skip
    for given in (tmp_path / "out", pattern):
        assert is_shards(given) and not is_shards(source)
        samples, names = scan_labelled(given)
        assert names == classes and [label for _, label in samples] == [label for _, label in files]
        assert [member.read_bytes() for member, _ in samples] == [path.read_bytes() for path, _ in files]
    first, _ = scan_labelled(tmp_path / "out" / "shard-000000.tar")
    assert len(first) == 8 and str(first[0][0]).endswith("shard-000000.tar:cat/0_v0.jpg")


def test_training_and_scoring_on_shards_are_training_and_scoring_on_the_folder(tmp_path) -> None:
    source = class_folder(tmp_path / "source", per_class=12)
    write_shards(source, tmp_path / "shards", shard_size=10, progress=False)
    settings = {**TINY, "epochs": 1, "batch_size": 8, "input_size": 32, "workers": 0}
    data = {"folder": {"data": str(source)}, "shards": {"data": str(tmp_path / "shards")}}
    scored = [source, tmp_path / "shards" / "shard-{000000..000003}.tar"]
    assert_trained_and_scored_alike(tmp_path, settings, data, scored, ("top1", "confusion"), 36)


def test_an_unreadable_image_in_a_shard_is_skipped_naming_it(tmp_path) -> None:
    source = class_folder(tmp_path / "source")
    (source / "owl" / "6.v2.jpg").write_bytes(b"\xff\xd8\xff\xe0 not the rest of a JPEG")
    write_shards(source, tmp_path / "out", progress=False)
    samples, classes = scan_labelled(tmp_path / "out")
    augmented = AugmentedImages(LabelledImages(samples, classes, Preprocessing(input_size=32)), Augmentation())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert augmented[(20, 0)] is None and augmented[(19, 0)] is not None
    assert "shard-000000.tar:owl/6_v2.jpg" in str(caught[0].message)


def test_bad_shards_and_outputs_are_refused_in_one_line_and_nothing_is_left(tmp_path, monkeypatch) -> None:
    source = class_folder(tmp_path / "source")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "mine.txt").write_text("the user's")
    with pytest.raises(OutputRefused, match="exists: name a new folder"):
        write_shards(source, tmp_path / "taken", progress=False)
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["mine.txt"]
    with pytest.raises(FileNotFoundError, match=r"shard not found: .*shard-000008.tar \(and 1 more\)"):
        shard_paths(str(tmp_path / "out" / "shard-{000008..000009}.tar"))
    (tmp_path / "junk.tar").write_bytes(b"no tar at all" * 100)
    with pytest.raises(ValueError, match="is not a readable tar shard"):
        scan_labelled(tmp_path / "junk.tar")
    with tarfile.open(tmp_path / "unlabelled.tar", "w") as tar:
        tar.add(source / "cat" / "0.v0.jpg", "cat/0.jpg")
    with pytest.raises(ValueError, match=r"sample cat/0 .* has jpg: a classification shard holds an image and a \.cls"):
        scan_labelled(tmp_path / "unlabelled.tar")

    reads = 0
    real_read = Path.read_bytes

    def failing(path: Path) -> bytes:  # the disk fails at the 15th image: no half-written shard, no folder
        nonlocal reads
        reads += 1
        if reads == 15:
            raise OSError(28, "No space left on device")
        return real_read(path)

    monkeypatch.setattr(Path, "read_bytes", failing)
    with pytest.raises(OSError, match="No space left"):
        write_shards(source, tmp_path / "failed", shard_size=4, progress=False)
    assert not (tmp_path / "failed").exists()


def test_the_command_writes_then_refuses_to_write_again(tmp_path) -> None:
    source = class_folder(tmp_path / "source")
    done = cli("shard", str(source), str(tmp_path / "out"), "--shard-size", "10")
    assert done.returncode == 0 and "21 images of 3 classes in 3 shards" in done.stdout
    again = cli("shard", str(source), str(tmp_path / "out"))
    assert again.returncode != 0 and len(again.stderr.strip().splitlines()) == 1 and "exists" in again.stderr


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_on_shards_a_killed_run_resumes_bit_for_bit_and_torchrun_equals_accumulation(tmp_path) -> None:
    """The trainer's guarantees, held by the suite of every kind on folders (tests/kinds), on shards too."""
    sample = SAMPLES["classification"](tmp_path / "sample")
    write_shards(sample.settings["data"], tmp_path / "shards", shard_size=50, progress=False)
    settings = {**sample.settings, "data": str(tmp_path / "shards" / "shard-{000000..000002}.tar")}
    (tmp_path / "kill").mkdir()
    assert_sigkill_then_resume_is_bitwise_equal(tmp_path / "kill", settings)
    (tmp_path / "torchrun").mkdir()
    torchrun = {**settings, "epochs": 1, "batch_size": 2 * settings["batch_size"], "dropout": 0.0}
    assert_torchrun_matches_accumulation(tmp_path / "torchrun", torchrun, sample.metric)
