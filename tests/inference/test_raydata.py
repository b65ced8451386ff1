"""Ray Data bulk inference on a local cluster of two workers (127.0.0.1): the same results as ``mobilenet predict``
on the same files, for each kind of model."""

from __future__ import annotations

import json

import pytest

from mobilenet.inference.bulk import predict_to_file
from mobilenet.inference.raydata import Predictor
from mobilenet.registry import kind_of_weights, load_deployed
from tests.helpers.data import write_images
from tests.helpers.models import tiny_weights

ray = pytest.importorskip("ray")


def assert_same(found, expected) -> None:
    """The same JSON result, numbers to float32's rounding (a batch of another size runs other kernels)."""
    if isinstance(expected, dict):
        assert list(found) == list(expected)
        for key in expected:
            assert_same(found[key], expected[key])
    elif isinstance(expected, list):
        assert len(found) == len(expected)
        for ours, theirs in zip(found, expected, strict=True):
            assert_same(ours, theirs)
    elif isinstance(expected, float):
        assert found == pytest.approx(expected, rel=1e-4, abs=1e-5)
    else:
        assert found == expected


@pytest.fixture(scope="module")
def cluster():
    # 2 workers (actors) of a CPU each, and a third CPU for the tasks that read the files: without it the actors
    # would hold every CPU and the reading wait for one forever
    ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


@pytest.mark.parametrize("model_kind", ["classifier", "segmenter", "detector"])
def test_two_ray_workers_give_what_predict_gives(tmp_path, cluster, model_kind) -> None:
    folder = tmp_path / "images"
    write_images(folder, 12, (40, 30))
    (folder / "broken.jpg").write_bytes(b"not an image")
    weights = tmp_path / f"{model_kind}.safetensors"
    weights.write_bytes(tiny_weights(model_kind))
    files = sorted(str(path) for path in folder.iterdir())
    expected = tmp_path / "predict.jsonl"
    task, model = kind_of_weights(str(weights)), load_deployed(str(weights), "eager")
    predict_to_file(lambda batch: task.call("predict", model, batch), files, expected, progress=False)
    lines = {line["image"]: line for line in map(json.loads, expected.read_text().splitlines())}
    images = ray.data.read_binary_files(str(folder), include_paths=True)
    rows = images.map_batches(Predictor, fn_constructor_kwargs={"weights": str(weights), "backend": "eager"},
                              compute=ray.data.ActorPoolStrategy(size=2), batch_size=4).take_all()  # fmt: skip
    assert sorted(row["image"] for row in rows) == files
    for row in rows:
        line = lines[row["image"]]
        if "error" in line:
            assert row["result"] is None and "cannot read image" in row["error"]
        else:
            assert row["error"] is None
            assert_same(json.loads(row["result"]), {key: value for key, value in line.items() if key != "image"})
