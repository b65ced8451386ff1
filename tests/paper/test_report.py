"""``mobilenet paper`` and the Figure 6 sweep: real (tiny) training runs, read back into the report."""

from __future__ import annotations

from pathlib import Path

import pytest

from mobilenet.classification.data import load_digits_images
from mobilenet.paper.ablation import VARIANTS, ablation_rows, compare_to_paper, read_ablation, run_ablation
from mobilenet.tasks import make_config
from tests.helpers.runs import cli

pytest.importorskip("matplotlib", reason="the report draws its figures: pip install 'mobilenet[plots]'")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every Figure 6 variant trained for one short epoch on 200 of the embedded digits, as image files."""
    data = tmp_path_factory.mktemp("digits")
    images, classes = load_digits_images()
    for n, (image, label) in enumerate(images[:200]):
        (data / classes[label]).mkdir(exist_ok=True)
        image.save(data / classes[label] / f"{n}.png")
    root = tmp_path_factory.mktemp("figure6")
    base = make_config(
        model="mobilenet_v2_035", data=str(data), input_size=32, small_input=True, epochs=1, batch_size=64, workers=0
    )
    run_ablation(base, root, seeds=[0])
    return root


@pytest.mark.slow
def test_the_sweep_trains_each_variant_once_with_its_switches(sweep: Path) -> None:
    curves = read_ablation(sweep)
    assert set(curves) == set(VARIANTS)
    assert all(curve.seeds == (0,) and len(curve.top1[0]) == 1 for curve in curves.values())
    configs = {variant: (sweep / f"{variant}-seed0" / "config.json").read_text() for variant in VARIANTS}
    assert '"shortcut": "expansion"' in configs["expansion-shortcut"]
    assert '"linear_bottleneck": false' in configs["relu6"]
    # Run again, it trains nothing: finished runs are kept as they are.
    stamps = {path: path.stat().st_mtime_ns for path in sweep.glob("*/summary.json")}
    run_ablation(make_config(model="mobilenet_v2_035", epochs=1, workers=0), sweep, seeds=[0])
    assert {path: path.stat().st_mtime_ns for path in sweep.glob("*/summary.json")} == stamps
    rows = ablation_rows(curves)
    assert next(row for row in rows if row["variant"] == "linear")["gap_to_linear"] == 0
    assert len(compare_to_paper(rows)) == 3
    with pytest.raises(ValueError, match="unknown ablation variants"):
        run_ablation(make_config(), sweep, seeds=[0], variants=["sigmoid"])


@pytest.mark.slow
def test_the_report_puts_every_table_and_figure_beside_the_papers(sweep: Path, tmp_path: Path) -> None:
    done = cli("paper", "--quick", "--out", str(tmp_path / "report"), "--ablation", str(sweep))
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "report" / "report.md").read_text()
    titles = ("Table 2", "Table 3", "Table 4", "Tables 5-6", "Table 7", "Figure 1", "Figure 5", "Section 5", "Figure 6")
    assert all(f"## {title}" in text for title in titles)
    assert "| MNet V2* OS16 | 2.11M | 2.11M | 2.75B | 2.74B | 75.32% |" in text  # Table 7, counted
    assert "| 112x112 | 16/401.4 | 16/400 |" in text  # Table 3, V2's largest tensor beside the paper's
    for figure in ("figure1.png", "figure5.png", "figure6.png"):
        assert (tmp_path / "report" / figure).read_bytes().startswith(b"\x89PNG")
    assert "partly reproduced  Tables 5-6" in done.stdout  # counted; mAP needs COCO weights not reachable here


def test_report_arguments_are_checked() -> None:
    done = cli("paper", "--weights", "model.tflite")
    assert done.returncode == 2 and "--weights and --images go together" in done.stderr
