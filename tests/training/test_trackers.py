"""Run logging beside metrics.csv: MLflow's local file store, read back with MLflow's own client."""

from __future__ import annotations

import csv

import pytest

from mobilenet.tasks import make_config, train
from mobilenet.training.config import resume_config
from mobilenet.training.trackers import MLFLOW_RUN_ID
from tests.helpers.runs import TINY

tracking = pytest.importorskip("mlflow.tracking", reason="MLflow logging needs mlflow: pip install 'mobilenet[mlflow]'")


@pytest.mark.slow
def test_mlflow_gets_the_config_and_every_epoch_and_a_resumed_run_continues_it(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    store, run = tmp_path / "mlruns", tmp_path / "run"
    config = make_config(**(TINY | {"epochs": 1, "batch_size": 128}), workers=0, out=str(run), mlflow_uri=str(store))
    train(config, progress=False)
    train(resume_config(run, epochs=2), resume=run, progress=False)  # one more epoch, same MLflow run

    client = tracking.MlflowClient(store.resolve().as_uri())
    run_id = (run / MLFLOW_RUN_ID).read_text()
    logged = client.get_run(run_id)
    assert logged.info.run_name == "run" and logged.info.status == "FINISHED"
    assert logged.data.params["lr"] == "0.05" and logged.data.params["model"] == "mobilenet_v2_035"
    with open(run / "metrics.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    history = client.get_metric_history(run_id, "val_top1")
    assert [(m.step, m.value) for m in history] == [(int(r["epoch"]), float(r["val_top1"])) for r in rows]
    assert len(history) == 2
    assert len(client.search_runs([logged.info.experiment_id])) == 1
