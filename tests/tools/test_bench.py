"""``mobilenet bench`` and ``mobilenet pick`` end to end on tiny configurations (correctness, not speed)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mobilenet.registry import create_model
from mobilenet.tools.bench import bench, bench_model, contender_specs, gemm_gflops, memory_probe, reference_model
from mobilenet.tools.pick import PickCell, PickResult, grid_cells, out_of_order, pick
from tests.helpers.data import write_images
from tests.helpers.models import exported_tiny

pytest.importorskip("onnxruntime", reason="bench compares deploy backends: pip install 'mobilenet[onnx]'")


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mobilenet", *args], capture_output=True, text=True, timeout=900)


def test_bench_cli_json_and_plot(tmp_path) -> None:
    png = tmp_path / "bench.png"
    result = cli("bench", "--widths", "0.35", "--resolutions", "96", "--rounds", "2", "--calls", "2", "--batch", "2",
                 "--precisions", "fp32", "--backends", "onnxruntime", "--reference", "none", "--json", "--plot",
                 str(png))  # fmt: skip
    assert result.returncode == 0, result.stderr
    (cell,) = json.loads(result.stdout)
    assert (cell["width_mult"], cell["resolution"], cell["batch"], cell["threads"]) == (0.35, 96, 2, 2)
    assert cell["madds"] == pytest.approx(11.9e6, rel=0.02)  # what `mobilenet profile` counts for 0.35@96
    names = [path["name"] for path in cell["paths"]]
    assert names[0] == cell["reference"] == "ours eager (NCHW)" and "deploy onnxruntime fp32" in names
    assert "plain ONNX Runtime session" in names
    assert not [name for name in names if name.startswith("deploy") and "onnxruntime" not in name]  # --backends
    for path in cell["paths"]:
        assert path["b1_p90_ms"] >= path["b1_ms"] > 0 and path["throughput"] > 0
        # Nothing beats the compute floor by more than measurement noise (the floor is a best-of-20 GEMM).
        assert path["b1_floor_ratio"] > 0.5 and path["throughput_floor_ratio"] > 0.5
        assert 6.5 < path["size_mb"] < 7.0  # 1.66M parameters (TF-slim's figure for 0.35) x 4 bytes, + BN
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_bench_model_ratios_and_peak_memory() -> None:
    model = create_model("mobilenet_v2_035", input_size=64, num_classes=10)
    # One int8 backend: each path is built again in a fresh process to measure its memory.
    result = bench_model(model, threads=1, batch=2, rounds=2, calls=2, reference="none", precisions=("int8",),
                         memory=True, backends=("onnxruntime",))  # fmt: skip
    names = [path.name for path in result.paths]
    assert names[:2] == ["ours eager (NCHW)", "optimize (folded, channels-last)"]
    assert any("int8" in name for name in names) and any("random tensors" in note for note in result.notes)
    assert result.paths[0].b1_speedup == 1.0 and result.paths[0].throughput_speedup == 1.0
    reference = result.paths[0]
    for path in result.paths:  # each ratio is that of the medians printed beside it
        assert path.b1_speedup == pytest.approx(reference.b1_ms / path.b1_ms)
        assert path.throughput_speedup == pytest.approx(path.throughput / reference.throughput)
    int8 = next(path for path in result.paths if "onnxruntime int8" in path.name)
    assert int8.size_mb < result.paths[0].size_mb / 2  # int8 weights: about a quarter of fp32
    assert result.baseline_memory_mb and all(path.peak_memory_mb for path in result.paths)
    # A runtime session holds its own copy of the graph on top of the process that built the model.
    assert int8.peak_memory_mb > result.baseline_memory_mb


def test_memory_probe_prints_peak_rss(capsys) -> None:
    config = {"arch": "mobilenet_v2", "width_mult": 0.35, "num_classes": 10, "input_size": 64}
    memory_probe(json.dumps([["optimize"], config, 1, 2, None]))
    assert float(capsys.readouterr().out) > 50  # MB: Python and torch alone take more


def test_references_and_specs() -> None:
    assert reference_model("none", 1.0) is None
    with pytest.raises(ValueError, match="unknown reference"):
        reference_model("keras", 1.0)
    specs = contender_specs("torchvision", precisions=("fp32",))
    assert specs[:4] == [("reference", "torchvision"), ("eager",), ("optimize",), ("onnxruntime-session",)]
    assert ("deploy", "torch", "fp32") not in specs  # that is optimize, timed once
    assert gemm_gflops(1, size=256, repeats=3) > 1


def test_pick_takes_the_best_published_top1_within_budget_and_plots_it(tmp_path) -> None:
    png = tmp_path / "pick.png"
    result = cli("pick", "--budget-ms", "10000", "--widths", "0.35", "--resolutions", "96", "128", "--rounds", "1",
                 "--calls", "2", "--threads", "1", "--plot", str(png), "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    picked = json.loads(result.stdout)
    assert [(c["width_mult"], c["resolution"]) for c in picked["cells"]] == [(0.35, 128), (0.35, 96)]
    assert (picked["choice"]["resolution"], picked["choice"]["top1"]) == (128, 50.8)
    assert all(c["latency_p90_ms"] >= c["latency_ms"] > 0 for c in picked["cells"])
    assert png.read_bytes()[:4] == b"\x89PNG"
    tight = pick(1e-6, threads=1, widths=[0.35], resolutions=[96], rounds=1, calls=2)
    assert tight.choice is None
    with pytest.raises(ValueError, match="the table has widths"):
        grid_cells([0.6], None)
    failed = cli("pick", "--budget-ms", "0")  # refused by the parser, with the command's usage
    assert failed.returncode == 2 and "--budget-ms: must be a finite number > 0" in failed.stderr.splitlines()[-1]
    with pytest.raises(ValueError, match="budget must be > 0"):
        pick(0)


def test_bench_rejects_weights_with_many_cells() -> None:
    from mobilenet.tools.bench import bench

    with pytest.raises(ValueError, match="weights fix the width"):
        bench(widths=[0.35, 0.5], weights="x.safetensors")


def test_figure5_flags_timings_out_of_order_and_keeps_an_absurd_budget_off_its_axis(monkeypatch, tmp_path) -> None:
    import mobilenet.tools.plots as plots

    # The timings of a disturbed quick run: 0.35@224 slower than 1.0@224, which has five times its MAdds.
    cells = [PickCell(1.0, 224, 575.0, 600.0, 72.0, 300.0), PickCell(0.35, 224, 986.0, 990.0, 60.3, 59.0),
             PickCell(0.35, 96, 20.0, 21.0, 45.5, 11.0)]  # fmt: skip
    assert out_of_order(cells) == ["0.35@224"]
    drawn = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path, dpi=None: drawn.append(fig))
    plots.plot_pick(PickResult(1e9, "eager", "fp32", 2, cells, None, out_of_order(cells)), tmp_path / "f.png")
    (axis,) = drawn[0].axes
    assert axis.get_xlim()[1] < 2000  # the cells' range, not the budget's 1e9 ms
    labels = axis.get_legend_handles_labels()[1]
    assert "budget 1e+09 ms: off the chart (every cell fits)" in labels and "out of order (noise?)" in labels


def test_bench_times_exported_files_side_by_side(tmp_path) -> None:
    pytest.importorskip("ai_edge_litert", reason="a TFLite file is timed in Google's runtime (the tflite extra)")
    write_images(tmp_path / "calibration", 4, (64, 48))
    weights, tflite, _ = exported_tiny(tmp_path, "classifier", ".tflite", "--precision", "int8", "--calibration",
                                       str(tmp_path / "calibration"))  # fmt: skip
    result = bench(weights=weights, threads=1, batch=2, rounds=1, calls=1, reference="none", precisions=(),
                   graphs=[tflite])  # fmt: skip
    names = [path.name for path in result[0].paths]
    assert names == ["ours eager (NCHW)", "optimize (folded, channels-last)", "classifier.tflite (LiteRT)"]
    missing = cli("bench", "--weights", str(weights), "--files", str(tmp_path / "none.tflite"))
    assert missing.returncode == 2 and "no such file to time" in missing.stderr.strip().splitlines()[-1]
