"""Exporter against the trained registry (the real pipeline's runs and versions) and the real predictor.

Traffic goes through the real predictor (`tests.support.services.run_api`, a uvicorn subprocess):
/predict logs each prediction to the SQLite store, /feedback records its label, and the exporter
reads that store. Nothing is mocked.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
from flask.testing import FlaskClient
from mlflow.tracking import MlflowClient
from mlstack_exporter.app import create_app, exporter_of

from mlstack.config import Config, DataConfig
from mlstack.data import load_base_dataset
from mlstack.store import PredictionStore
from tests.support.metrics import Samples, parse_metrics, sample_value
from tests.support.net import wait_until
from tests.support.pipeline import TrainedRegistry
from tests.support.services import run_api

pytestmark = pytest.mark.integration

GAUGE_TO_RUN_METRIC = {
    "mlops_model_accuracy": "accuracy",
    "mlops_model_precision": "precision_weighted",
    "mlops_model_recall": "recall_weighted",
    "mlops_model_f1": "f1_weighted",
}


@pytest.fixture(autouse=True)
def fail_fast_mlflow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")


def scrape(http: FlaskClient) -> Samples:
    response = http.get("/metrics")
    assert response.status_code == 200
    return parse_metrics(response.get_data(as_text=True))


def test_versions_carry_their_training_runs_metrics(
    trained_registry: TrainedRegistry, tmp_path: Path
) -> None:
    config = trained_registry.config(**{"exporter.drift_report_path": str(tmp_path / "drift.html")})
    app = create_app(config, start_background=False)
    assert exporter_of(app).refresh_all()["registry"]
    samples = scrape(app.test_client())

    client = MlflowClient(trained_registry.tracking_uri)
    name = trained_registry.model_name
    versions = client.search_model_versions(f"name = '{name}'")
    assert versions
    for mv in versions:
        assert mv.run_id
        run_metrics = client.get_run(mv.run_id).data.metrics
        for gauge, key in GAUGE_TO_RUN_METRIC.items():
            assert sample_value(samples, gauge, model=name, version=str(mv.version)) == pytest.approx(
                run_metrics[key]
            )
    champion = client.get_model_version_by_alias(name, "champion").version
    assert sample_value(samples, "mlops_champion_version", model=name) == float(champion)
    experiment = client.get_experiment_by_name(config.project.experiment)
    assert experiment is not None
    assert sample_value(samples, "mlops_experiment_runs", experiment=experiment.name) == len(
        client.search_runs([experiment.experiment_id])
    )


def test_pipeline_promotion_moves_the_champion_gauge_within_one_refresh(
    trained_registry: TrainedRegistry, tmp_path: Path
) -> None:
    interval = 1.0
    config = trained_registry.config(
        **{"exporter.refresh_interval_s": interval, "exporter.drift_report_path": str(tmp_path / "d.html")}
    )
    app = create_app(config)
    http = app.test_client()
    name = trained_registry.model_name
    try:
        wait_until(lambda: sample_value(scrape(http), "mlops_champion_version", model=name) is not None, 60)
        new_version = trained_registry.train_and_promote(models=["logistic_regression"])
        promoted = time.monotonic()
        wait_until(
            lambda: sample_value(scrape(http), "mlops_champion_version", model=name) == float(new_version),
            timeout=30,
            interval=0.05,
        )
        # one interval to notice, plus the refresh itself on a loaded 2-core machine
        assert time.monotonic() - promoted < interval + 5.0
        age = sample_value(scrape(http), "mlops_champion_age_seconds", model=name)
        assert age is not None and age < 60
    finally:
        exporter_of(app).stop()


def _predict(api_url: str, frame: pd.DataFrame, batch: int = 250) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for start in range(0, len(frame), batch):
        chunk = frame.iloc[start : start + batch].to_dict(orient="records")
        response = requests.post(f"{api_url}/predict", json={"instances": chunk}, timeout=60)
        assert response.status_code == 200, response.text
        out.extend(response.json()["predictions"])
    return out


def test_drift_and_live_accuracy_from_predictor_traffic(
    trained_registry: TrainedRegistry, tmp_path: Path
) -> None:
    config: Config = trained_registry.config(
        **{
            "prediction_store.url": f"sqlite:///{tmp_path / 'predictions.db'}",
            "exporter.drift_report_path": str(tmp_path / "drift.html"),
            "exporter.drift_window": 1000,
            "exporter.drift_min_rows": 100,
            # one drifted feature of 13 has to count as dataset drift in this test
            "monitoring.drift_share_threshold": 0.05,
        }
    )
    wine = load_base_dataset(DataConfig()).features
    store = PredictionStore(config.prediction_store_url)
    store.create_schema()
    app = create_app(config, start_background=False, store=store)
    exporter = exporter_of(app)
    http = app.test_client()

    with run_api(config, tmp_path / "api") as api:
        like = wine.sample(400, replace=True, random_state=11).reset_index(drop=True)
        served = _predict(api.url, like)
        wait_until(lambda: store.count_predictions() == 400, 30, what="400 logged predictions")
        assert exporter.refresh_all() == {
            "registry": True,
            "runs": True,
            "drift": True,
            "accuracy": True,
            "feedback": True,
        }
        samples = scrape(http)
        assert sample_value(samples, "mlops_drift_insufficient_data") == 0
        assert sample_value(samples, "mlops_drift_window_size") == 400
        assert sample_value(samples, "mlops_drift_feature_drifted", feature="alcohol") == 0
        assert sample_value(samples, "mlops_drift_dataset_drift") == 0, exporter.summary()["drift"]

        # Ground truth: the first 30 predictions were right, the next 10 wrong.
        version = requests.get(f"{api.url}/version", timeout=5).json()["model"]["version"]
        classes = sorted({p["label"] for p in served} | {0, 1, 2})
        for i, prediction in enumerate(served[:40]):
            label = prediction["label"] if i < 30 else next(c for c in classes if c != prediction["label"])
            response = requests.post(
                f"{api.url}/feedback",
                json={"prediction_id": prediction["id"], "true_label": label},
                headers=api.labeller,
                timeout=10,
            )
            assert response.status_code == 200, response.text

        shifted = wine.sample(1000, replace=True, random_state=12).reset_index(drop=True)
        shifted["alcohol"] += 3 * wine["alcohol"].std()
        _predict(api.url, shifted)
        wait_until(lambda: store.count_predictions() == 1400, 60, what="1400 logged predictions")

    assert exporter.refresh_all() == {
        "registry": True,
        "runs": True,
        "drift": True,
        "accuracy": True,
        "feedback": True,
    }
    samples = scrape(http)
    name = config.project.registered_model
    assert sample_value(samples, "mlops_live_labelled_count", model=name, version=str(version)) == 40
    assert sample_value(samples, "mlops_live_accuracy", model=name, version=str(version)) == pytest.approx(
        0.75
    )
    assert sample_value(samples, "mlops_drift_window_size") == 1000
    assert sample_value(samples, "mlops_drift_dataset_drift") == 1
    assert sample_value(samples, "mlops_drift_feature_drifted", feature="alcohol") == 1
    drift = exporter.state.drift
    assert drift is not None and drift.result is not None
    alcohol = drift.result.features["alcohol"]
    assert (
        alcohol.score < alcohol.threshold
        if "p_value" in alcohol.method
        else alcohol.score >= alcohol.threshold
    )
    assert drift.reference_version == str(version)
    # the reference is the training run's reference.parquet, tied to the run's data hash
    run_id = MlflowClient(trained_registry.tracking_uri).get_model_version(name, str(version)).run_id
    assert run_id
    data_hash = MlflowClient(trained_registry.tracking_uri).get_run(run_id).data.tags.get("data_hash")
    assert data_hash and drift.reference_hash == data_hash
    assert (
        sample_value(
            samples,
            "mlops_drift_reference_info",
            model_version=str(version),
            reference_hash=drift.reference_hash or "",
        )
        == 1
    )
    assert "alcohol" in (tmp_path / "drift.html").read_text()
