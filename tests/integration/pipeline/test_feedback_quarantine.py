"""Bad feedback cannot stop the loop: absurd labelled predictions are quarantined, counted and reported.

The scenario of issue 18: a client sends absurd but float32-valid rows (`alcohol = 1e6`, ...) to the
real predictor and a labeller labels them through the real, token-protected POST /feedback. The real
pipeline then runs against a real MLflow server: it succeeds, leaves those rows out (recorded with
their prediction ids and reasons), and reports the counts in its stage line and on the training runs;
the predictor counts the out-of-range inputs, the exporter exposes the used and excluded counts, and
`mlstack feedback restore` (the real CLI) brings a row back into the next run's training data.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
from mlstack_exporter.app import create_app, exporter_of

from mlstack import registry
from mlstack.config import REPO_ROOT
from mlstack.contract import RUN_METRIC_FEEDBACK_EXCLUDED, RUN_METRIC_FEEDBACK_USED, config_env_var
from mlstack.data import load_base_dataset
from mlstack.quarantine import EXCLUDED, RESTORED, audit_entries, decisions
from mlstack.store import PredictionStore
from tests.support.metrics import parse_metrics, sample_value
from tests.support.mlflow_server import MlflowServer
from tests.support.pipeline import isolated_config, run_training
from tests.support.services import ApiProcess, run_api

pytestmark = pytest.mark.integration
GOOD, ABSURD = 30, 26


def predict(api: ApiProcess, rows: pd.DataFrame) -> list[str]:
    response = requests.post(
        f"{api.url}/predict", json={"instances": rows.to_dict(orient="records")}, timeout=30
    )
    assert response.status_code == 200, response.text  # absurd inputs are served: that is how drift shows
    return [p["id"] for p in response.json()["predictions"]]


def label(api: ApiProcess, ids: list[str], labels: list[int]) -> None:
    for prediction_id, true_label in zip(ids, labels, strict=True):
        answer = requests.post(
            f"{api.url}/feedback",
            json={"prediction_id": prediction_id, "true_label": true_label},
            headers=api.labeller,
            timeout=30,
        )
        assert answer.status_code == 200, answer.text


def mlstack_cli(config_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLSTACK")} | config_env
    return subprocess.run(
        [sys.executable, "-m", "mlstack.cli", *args],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_absurd_feedback_is_quarantined_and_the_pipeline_still_trains(
    shared_mlflow: MlflowServer, unique_names: dict[str, Any], tmp_path: Path
) -> None:
    store_url = f"sqlite:///{tmp_path / 'predictions.db'}"
    settings: dict[str, Any] = {**unique_names, "prediction_store.url": store_url}
    config = isolated_config(shared_mlflow.url, tmp_path / "state", ["logistic_regression"], **settings)
    first = run_training(config)
    assert first.promoted and first.registered_version == "1"

    wine = load_base_dataset(config.data)
    good = wine.features.sample(GOOD, random_state=3) * 1.001
    good_labels = wine.target.loc[good.index].astype(int).tolist()
    absurd = wine.features.sample(ABSURD, random_state=4).reset_index(drop=True).copy()
    absurd["alcohol"] = 1e6  # absurd, but a valid float32: the predictor accepts it
    absurd.loc[::2, "proline"] = -3e7
    with run_api(config, tmp_path / "api") as api:
        good_ids = predict(api, good)
        absurd_ids = predict(api, absurd)
        label(api, good_ids, good_labels)
        label(api, absurd_ids, [i % 3 for i in range(ABSURD)])
        # The predictor counted the out-of-range inputs per feature.
        metrics = parse_metrics(requests.get(f"{api.url}/metrics", timeout=10).text)
        counted = sample_value(
            metrics, "mlops_input_out_of_range_total", feature="alcohol", model_version="1"
        )
        assert counted == ABSURD
        assert (
            sample_value(metrics, "mlops_input_out_of_range_total", feature="proline", model_version="1")
            == 13
        )

    # ---- the real pipeline: it succeeds, trains on the usable rows and says how many it left out
    second = run_training(config)
    validate = second.results["validate-data"]
    assert f"feedback {GOOD} used, {ABSURD} excluded" in validate, validate
    assert second.composition["feedback_rows"] == GOOD and second.composition["feedback_excluded"] == ABSURD
    assert second.registered_version == "2" and not second.results["train"].startswith("FAILED")
    client = registry.make_client(config)
    run = client.get_run(second.candidates[0].run_id)
    assert run.data.metrics[RUN_METRIC_FEEDBACK_USED] == GOOD
    assert run.data.metrics[RUN_METRIC_FEEDBACK_EXCLUDED] == ABSURD
    assert run.data.tags[RUN_METRIC_FEEDBACK_EXCLUDED] == str(ABSURD)  # tag of the same name

    store = PredictionStore(store_url)
    try:
        table = decisions(store)
        assert set(table) == set(absurd_ids)
        assert all(d.status == EXCLUDED and d.kind == "out_of_range" for d in table.values())
        assert table[absurd_ids[1]].reason == "alcohol: out of range (1000000.0)"
        assert (
            table[absurd_ids[0]].reason
            == "alcohol: out of range (1000000.0); proline: out of range (-30000000.0)"
        )

        # ---- the exporter: the same check on the newest labels, and the table's size
        exporter_config = config.model_copy(
            update={
                "exporter": config.exporter.model_copy(update={"drift_report_path": str(tmp_path / "d.html")})
            }
        )
        app = create_app(exporter_config, start_background=False, store=store)
        assert exporter_of(app).refresh_all()["feedback"], exporter_of(app).summary()
        samples = parse_metrics(app.test_client().get("/metrics").get_data(as_text=True))
        assert sample_value(samples, "mlops_feedback_window_rows", status="used") == GOOD
        assert sample_value(samples, "mlops_feedback_window_rows", status="excluded") == ABSURD
        assert sample_value(samples, "mlops_feedback_window_excluded", reason="out_of_range") == ABSURD
        assert sample_value(samples, "mlops_feedback_quarantined_rows") == ABSURD
        share = sample_value(samples, "mlops_feedback_excluded_share")
        assert share == pytest.approx(ABSURD / (GOOD + ABSURD))

        # ---- an operator looks, and restores one row with the real CLI (audited)
        cli_env = {
            config_env_var("services.state_dir"): str(config.state_dir),
            config_env_var("prediction_store.url"): store_url,
        }
        listed = mlstack_cli(cli_env, "feedback", "list")
        assert listed.returncode == 0, listed.stderr
        assert f"{ABSURD} rows (excluded out_of_range: {ABSURD})" in listed.stdout
        chosen = absurd_ids[1]
        shown = mlstack_cli(cli_env, "feedback", "show", chosen)
        assert shown.returncode == 0 and "1000000.0" in shown.stdout and "out_of_range" in shown.stdout
        restored = mlstack_cli(
            cli_env, "feedback", "restore", chosen, "--reason", "value confirmed by the lab"
        )
        assert restored.returncode == 0, restored.stderr
        assert decisions(store)[chosen].status == RESTORED
        assert [e["action"] for e in audit_entries(store, chosen)] == ["quarantined", "restored"]
    finally:
        store.dispose()

    # ---- the next run trains on the restored row
    third = run_training(config, stages=["validate-data"])
    assert third.composition["feedback_rows"] == GOOD + 1
    assert third.composition["feedback_excluded"] == ABSURD - 1
