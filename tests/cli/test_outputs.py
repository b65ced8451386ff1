"""Nothing of the user's is overwritten unless they ask: every command that writes, against every kind of output path.

The property: whatever the command and the output path (a file that exists, the input itself, a link to it, a
folder, a file where a folder goes, a path inside a file, two inputs of one name), every file that was there before
is byte for byte unchanged afterwards, except the one output that ``--force`` was given for; and a refusal is one
line, before any work (no file added either). Commands run in this process on tiny models.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from mobilenet.utils.outputs import OutputRefused, check_outputs, distinct_names
from tests.helpers.data import png_bytes
from tests.helpers.faults import assert_refused, changes, run_in_process, snapshot
from tests.helpers.models import tiny_weights

# Commands that write one named file (its extension fixed by the format), and those that write per image in --out.
FILE_COMMANDS = ("convert", "export", "eval-plot", "profile-plot")
FOLDER_COMMANDS = ("segment", "detect")
CASES = ("new", "existing file", "the input", "a link to the input", "a folder", "inside a file")


@dataclass(frozen=True)
class Scene:
    """The files around a command: its inputs, and what stands at its output path."""

    command: str
    case: str
    force: bool

    def build(self, folder: Path) -> tuple[list[str], Path]:
        """The argv, and the output path (a file, or the folder of --out)."""
        weights = folder / "weights.safetensors"
        kind = {"segment": "segmenter", "detect": "detector"}.get(self.command, "classifier")
        weights.write_bytes(tiny_weights(kind))
        image = folder / "photos" / "cat.png"
        image.parent.mkdir()
        image.write_bytes(png_bytes(40, 48, seed=1))
        data = folder / "data"
        for name in ("a", "b"):
            (data / name).mkdir(parents=True)
            (data / name / "0.png").write_bytes(png_bytes(32, 32, seed=len(name)))
        inputs = [weights, image]
        if self.command in FOLDER_COMMANDS:
            return self.folder_scene(folder, weights, image, inputs)
        suffix = {"convert": ".safetensors", "export": ".onnx"}.get(self.command, ".png")
        output = self.place(folder, folder / f"out{suffix}", weights)
        argv = {
            "convert": ["convert", str(weights), str(output)],
            "export": ["export", str(weights), str(output)],
            "eval-plot": ["eval", "--weights", str(weights), "--data", str(data), "--workers=0", "--plot", str(output)],
            "profile-plot": ["profile", "mobilenet_v2_035", "--plot", str(output)],
        }[self.command]
        return argv, output

    def place(self, folder: Path, output: Path, source: Path) -> Path:
        """What this case puts at ``output`` (or the path it gives instead)."""
        if self.case == "existing file":
            output.write_bytes(b"the user's own file")
        elif self.case == "the input":
            return source
        elif self.case == "a link to the input":
            output.symlink_to(source)
        elif self.case == "a folder":
            output.mkdir()
            (output / "kept.txt").write_text("the user's")
        elif self.case == "inside a file":
            (folder / "notes").write_text("the user's")
            return folder / "notes" / output.name
        return output

    def folder_scene(self, folder: Path, weights: Path, image: Path, inputs: list[Path]) -> tuple[list[str], Path]:
        # A second image of the same name elsewhere: its results must not take the first one's names.
        twin = folder / "more" / "cat.png"
        twin.parent.mkdir()
        twin.write_bytes(png_bytes(40, 48, seed=2))
        inputs.append(twin)
        out = folder / "results"
        if self.case == "existing file":  # what the command would write for the first image is already there
            out.mkdir()
            name = "photos_cat.png" if self.command == "segment" else "photos_cat_detections.png"
            (out / name).write_bytes(b"the user's own file")
        elif self.case in ("the input", "a link to the input"):  # --out the images' own folder, names unchanged
            out = image.parent
            inputs.pop()  # one image: its own name is then what segment would write over
        elif self.case in ("a folder", "inside a file"):  # a file where the folder goes
            out.write_text("the user's")
        images = [str(path) for path in inputs[1:]]
        argv = [self.command, *images, "--weights", str(weights), "--out", str(out), "--backend", "eager"]
        return argv, out


def allowed_change(scene: Scene, output: Path, folder: Path) -> set[str]:
    """The files that may change: the output that --force was given for (never an input)."""
    if not scene.force or scene.case != "existing file":
        return set()
    if scene.command in FOLDER_COMMANDS:
        return {path.relative_to(folder).as_posix() for path in output.iterdir()}
    return {output.relative_to(folder).as_posix()}


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    command=st.sampled_from(FILE_COMMANDS + FOLDER_COMMANDS),
    case=st.sampled_from(CASES),
    force=st.booleans(),
)
@example(command="export", case="the input", force=True)
@example(command="segment", case="the input", force=False)
@example(command="segment", case="new", force=False)
@example(command="detect", case="existing file", force=False)
@example(command="convert", case="a link to the input", force=True)
def test_no_command_changes_a_file_that_was_there(tmp_path, command: str, case: str, force: bool) -> None:
    assume(command != "profile-plot" or "input" not in case)  # profile reads no file
    scene = Scene(command, case, force)
    with tempfile.TemporaryDirectory(dir=tmp_path) as name:
        folder = Path(name)
        argv, output = scene.build(folder)
        argv += ["--force"] if force else []
        before = snapshot(folder)
        outcome = run_in_process(argv)
        after = snapshot(folder)
        touched = [change for change in changes(before, after) if not change.startswith("added: ")]
        allowed = allowed_change(scene, output, folder)
        assert [c for c in touched if c.split(": ", 1)[1] not in allowed] == [], outcome.describe()
        overwrites = case in ("a folder", "inside a file") or (case == "existing file" and not force)
        # Written over an input: a file command's output named as one, or segment's mask named as its image.
        overwrites |= "input" in case and command != "detect"
        if overwrites:
            line = assert_refused(outcome, (2,))
            assert changes(before, after) == [], outcome.describe()  # refused before any work: nothing added
            assert str(output) in line or str(output.parent) in line, line
            return
        assert outcome.code == 0, outcome.describe()
        if command in FOLDER_COMMANDS and "input" not in case:  # one set of files per image, under distinct names
            written = sorted(path.name for path in output.iterdir())
            stems = {"segment": ["{}.png", "{}_overlay.png"], "detect": ["{}_detections.png"]}[command]
            assert written == sorted(s.format(n) for n in ("more_cat", "photos_cat") for s in stems), written


def test_train_never_trains_into_something_that_exists(tmp_path) -> None:
    for existing in ("empty", "file"):
        out = tmp_path / existing
        out.mkdir() if existing == "empty" else out.write_text("the user's")
        before = snapshot(tmp_path)
        line = assert_refused(run_in_process(["train", "--out", str(out), "--epochs", "1"]), (2,))
        assert "already exists: pick another --out" in line and changes(before, snapshot(tmp_path)) == []
    inside = run_in_process(["train", "--out", str(tmp_path / "file" / "run"), "--epochs", "1"])
    assert "is inside" in assert_refused(inside, (2,))


def test_export_takes_its_format_from_the_name_and_refuses_a_name_of_another(tmp_path) -> None:
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(tiny_weights("classifier"))
    wrong = assert_refused(run_in_process(["export", str(weights), str(tmp_path / "x.pt"), "--format", "onnx"]), (2,))
    assert "x.pt is not a name for a onnx file: name it x.onnx" in wrong
    unknown = assert_refused(run_in_process(["export", str(weights), str(tmp_path / "x.bin")]), (2,))
    assert "name the file .onnx, .pt, .tflite or .pte" in unknown
    assert not list(tmp_path.glob("x.*"))


def test_output_checks_and_names() -> None:
    assert distinct_names(["a/x.jpg", "b/x.jpg", "c/y.png", "a/x.jpg"]) == ["a_x", "b_x", "y", "a_x-2"]
    assert distinct_names(["x.jpg", "x.png"]) == ["x", "x-2"]
    with pytest.raises(OutputRefused, match="would be written twice"):
        check_outputs(["o/a.png", "o/../o/a.png"])
    with pytest.raises(OutputRefused, match="one of the inputs"):
        check_outputs([__file__], [__file__], overwrite=True)
    with pytest.raises(OutputRefused, match=r"exists: write somewhere else, or replace it \(--force\)"):
        check_outputs([__file__], allow="--force")
    check_outputs([__file__], overwrite=True)  # asked for: allowed
