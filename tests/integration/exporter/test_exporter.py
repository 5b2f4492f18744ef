"""Exporter against a real MLflow server, a real SQLite prediction store and real Evidently.

Traffic is written to the store directly with PredictionStore (tests.support.exporter.write_predictions),
the same table the predictor's log writer fills; no part of the exporter is mocked.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
from flask.testing import FlaskClient
from mlflow.tracking import MlflowClient
from mlstack_exporter.app import create_app, exporter_of
from mlstack_exporter.runs import RunCounter

from mlstack.config import Config, DataConfig, load_config
from mlstack.data import load_base_dataset
from mlstack.registry import move_alias
from mlstack.store import PredictionStore
from tests.support.exporter import (
    log_pipeline_run,
    log_training_run,
    register_version,
    write_predictions,
)
from tests.support.metrics import Samples, parse_metrics, sample_value
from tests.support.metrics import scrape as scrape_url
from tests.support.mlflow_server import MlflowServer, start_mlflow_server
from tests.support.net import free_port, wait_until
from tests.support.process import ServiceProcess

pytestmark = pytest.mark.integration

METRICS_V1 = {"accuracy": 0.91, "precision_weighted": 0.92, "recall_weighted": 0.91, "f1_weighted": 0.905}
METRICS_V2 = {"accuracy": 0.95, "precision_weighted": 0.96, "recall_weighted": 0.95, "f1_weighted": 0.951}


@pytest.fixture(autouse=True)
def fail_fast_mlflow(monkeypatch: pytest.MonkeyPatch) -> None:
    """What `python -m mlstack_exporter` sets: MLflow calls fail fast instead of retrying for minutes."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")


@pytest.fixture(scope="module")
def shared_mlflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """One MLflow server for this module's tests; each test uses its own model and experiment names."""
    server = start_mlflow_server(tmp_path_factory.mktemp("exporter-mlflow"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def wine() -> pd.DataFrame:
    dataset = load_base_dataset(DataConfig())
    return dataset.features.assign(prediction=dataset.target.to_numpy())


@pytest.fixture
def reference(wine: pd.DataFrame) -> pd.DataFrame:
    return wine.sample(150, random_state=0).reset_index(drop=True)


def exporter_config(tracking_uri: str, tmp_path: Path, name: str, **overrides: Any) -> Config:
    """Test config: its own model/experiment names, store and report path; short intervals."""
    return load_config(
        overrides={
            "mlflow.tracking_uri": tracking_uri,
            "project.registered_model": name,
            "project.experiment": name,
            "prediction_store.url": f"sqlite:///{tmp_path / 'predictions.db'}",
            "services.state_dir": str(tmp_path / "state"),
            "exporter.drift_min_rows": 50,
            **overrides,
        },
        environ={},
    )


def scrape(client: FlaskClient) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200
    return parse_metrics(response.get_data(as_text=True))


def two_versions(client: MlflowClient, name: str, reference: pd.DataFrame) -> tuple[str, str]:
    """Version 1 (champion) and version 2 (challenger), each with its training run's metrics."""
    v1 = register_version(client, name, log_training_run(client, name, METRICS_V1, reference, "h1"), "h1")
    v2 = register_version(client, name, log_training_run(client, name, METRICS_V2, reference, "h2"), "h2")
    move_alias(client, name, "champion", v1, "first promotion")
    move_alias(client, name, "challenger", v2, "candidate")
    return v1, v2


def test_registered_versions_aliases_and_pipeline(
    shared_mlflow: MlflowServer, reference: pd.DataFrame, tmp_path: Path
) -> None:
    name = "exp-versions"
    client = MlflowClient(shared_mlflow.url)
    v1, v2 = two_versions(client, name, reference)
    log_pipeline_run(client, name, "failed", "drift", 42.5)
    app = create_app(exporter_config(shared_mlflow.url, tmp_path, name), start_background=False)
    assert exporter_of(app).refresh_all()["registry"]

    samples = scrape(app.test_client())
    for metric, key in [
        ("mlops_model_accuracy", "accuracy"),
        ("mlops_model_precision", "precision_weighted"),
        ("mlops_model_recall", "recall_weighted"),
        ("mlops_model_f1", "f1_weighted"),
    ]:
        assert sample_value(samples, metric, model=name, version=v1) == pytest.approx(METRICS_V1[key])
        assert sample_value(samples, metric, model=name, version=v2) == pytest.approx(METRICS_V2[key])
    assert sample_value(samples, "mlops_champion_version", model=name) == float(v1)
    assert sample_value(samples, "mlops_challenger_version", model=name) == float(v2)
    age = sample_value(samples, "mlops_champion_age_seconds", model=name)
    assert age is not None and 0 <= age < 120
    assert sample_value(samples, "mlops_experiment_runs", experiment=name) == 2
    assert sample_value(samples, "mlops_experiment_runs", experiment=f"{name}-pipeline") == 1
    assert sample_value(samples, "mlops_pipeline_last_run_info", status="failed", trigger="drift") == 1
    assert sample_value(samples, "mlops_pipeline_last_success") == 0
    assert sample_value(samples, "mlops_pipeline_last_duration_seconds") == pytest.approx(42.5)
    assert sample_value(samples, "mlops_exporter_source_up", source="registry") == 1
    last = sample_value(samples, "mlops_exporter_last_refresh_timestamp_seconds", source="registry")
    assert last is not None and abs(time.time() - last) < 60


def test_promotion_changes_champion_within_one_refresh(
    shared_mlflow: MlflowServer, reference: pd.DataFrame, tmp_path: Path
) -> None:
    name = "exp-promotion"
    client = MlflowClient(shared_mlflow.url)
    v1, v2 = two_versions(client, name, reference)
    interval = 0.5
    config = exporter_config(shared_mlflow.url, tmp_path, name, **{"exporter.refresh_interval_s": interval})
    app = create_app(config)
    try:
        http = app.test_client()
        wait_until(lambda: sample_value(scrape(http), "mlops_champion_version", model=name) == float(v1), 30)
        # let the champion age grow past the next move
        wait_until(
            lambda: (sample_value(scrape(http), "mlops_champion_age_seconds", model=name) or 0) >= 1.0, 30
        )
        age_before = sample_value(scrape(http), "mlops_champion_age_seconds", model=name)
        assert age_before is not None and age_before >= 1.0

        move_alias(client, name, "champion", v2, "promotion in test")
        promoted = time.monotonic()
        wait_until(
            lambda: sample_value(scrape(http), "mlops_champion_version", model=name) == float(v2), 10, 0.05
        )
        # one interval to notice, plus the refresh itself (a few MLflow calls on a loaded 2-core machine)
        assert time.monotonic() - promoted < interval + 5.0
        age_after = sample_value(scrape(http), "mlops_champion_age_seconds", model=name)
        assert age_after is not None and age_after < age_before
    finally:
        exporter_of(app).stop()


def test_drift_like_reference_then_one_feature_shifted(
    shared_mlflow: MlflowServer, wine: pd.DataFrame, reference: pd.DataFrame, tmp_path: Path
) -> None:
    name = "exp-drift"
    client = MlflowClient(shared_mlflow.url)
    v1, _ = two_versions(client, name, reference)
    # One drifted feature out of 13 must count as dataset drift here, so the share threshold is low.
    config = exporter_config(shared_mlflow.url, tmp_path, name, **{"monitoring.drift_share_threshold": 0.05})
    store = PredictionStore(config.prediction_store_url)
    store.create_schema()
    app = create_app(config, start_background=False, store=store)
    exporter = exporter_of(app)
    http = app.test_client()
    features = [c for c in wine.columns if c != "prediction"]

    like = wine.sample(300, replace=True, random_state=1).reset_index(drop=True)
    write_predictions(store, like[features], v1, name, like["prediction"].tolist())
    assert exporter.refresh_all()["drift"]
    samples = scrape(http)
    assert sample_value(samples, "mlops_drift_insufficient_data") == 0
    assert sample_value(samples, "mlops_drift_window_size") == 300
    assert sample_value(samples, "mlops_drift_dataset_drift") == 0
    assert sample_value(samples, "mlops_drift_feature_drifted", feature="alcohol") == 0
    assert sample_value(samples, "mlops_drift_reference_info", model_version=v1, reference_hash="h1") == 1
    assert (sample_value(samples, "mlops_drift_share_drifted_features") or 0) < 0.05
    assert sample_value(samples, "mlops_drift_prediction_drifted") == 0

    shifted = wine.sample(1000, replace=True, random_state=2).reset_index(drop=True)
    shifted["alcohol"] += 3 * wine["alcohol"].std()
    write_predictions(
        store, shifted[features], v1, name, shifted["prediction"].tolist(), start_ts=time.time() + 10
    )
    assert exporter.refresh_all()["drift"]
    samples = scrape(http)
    assert sample_value(samples, "mlops_drift_window_size") == config.exporter.drift_window
    assert sample_value(samples, "mlops_drift_dataset_drift") == 1
    assert sample_value(samples, "mlops_drift_feature_drifted", feature="alcohol") == 1
    method = next(
        dict(labels)["method"]
        for (metric, labels) in samples
        if metric == "mlops_drift_feature_score" and dict(labels)["feature"] == "alcohol"
    )
    score = sample_value(samples, "mlops_drift_feature_score", feature="alcohol", method=method)
    threshold = sample_value(samples, "mlops_drift_feature_threshold", feature="alcohol", method=method)
    assert score is not None and threshold is not None
    assert score < threshold if "p_value" in method else score >= threshold
    assert sample_value(samples, "mlops_drift_feature_drifted", feature="proline") == 0

    report = http.get("/reports/drift")
    assert report.status_code == 200 and report.mimetype == "text/html"
    assert "alcohol" in report.get_data(as_text=True)
    on_disk = Path(tmp_path / "state" / "reports" / "drift.html")
    assert on_disk.read_text() == report.get_data(as_text=True)
    assert "dataset drift" in http.get("/").get_data(as_text=True)


def test_insufficient_data_exports_no_scores(
    shared_mlflow: MlflowServer, wine: pd.DataFrame, reference: pd.DataFrame, tmp_path: Path
) -> None:
    name = "exp-insufficient"
    client = MlflowClient(shared_mlflow.url)
    v1, _ = two_versions(client, name, reference)
    config = exporter_config(shared_mlflow.url, tmp_path, name)
    store = PredictionStore(config.prediction_store_url)
    store.create_schema()
    features = [c for c in wine.columns if c != "prediction"]
    write_predictions(store, wine[features].head(20), v1, name)
    app = create_app(config, start_background=False, store=store)
    assert exporter_of(app).refresh_all()["drift"]
    samples = scrape(app.test_client())
    assert sample_value(samples, "mlops_drift_insufficient_data") == 1
    assert sample_value(samples, "mlops_drift_window_size") == 20
    assert not [key for key in samples if key[0].startswith(("mlops_drift_feature", "mlops_drift_share"))]
    assert sample_value(samples, "mlops_drift_dataset_drift") is None
    page = app.test_client().get("/reports/drift").get_data(as_text=True)
    assert "insufficient data" in page.lower() and "20 logged predictions" in page


def test_live_accuracy_per_version_over_the_window(
    shared_mlflow: MlflowServer, wine: pd.DataFrame, reference: pd.DataFrame, tmp_path: Path
) -> None:
    name = "exp-accuracy"
    client = MlflowClient(shared_mlflow.url)
    v1, v2 = two_versions(client, name, reference)
    config = exporter_config(shared_mlflow.url, tmp_path, name, **{"exporter.accuracy_window": 12})
    store = PredictionStore(config.prediction_store_url)
    store.create_schema()
    features = wine.drop(columns="prediction").head(10)
    now = time.time()
    old = write_predictions(store, features, v1, name, [1] * 10)  # predicted class 1 ten times
    new = write_predictions(store, features.head(4), v2, name, [2] * 4)
    for i, pid in enumerate(old):  # 7 of 10 right
        store.add_feedback(pid, 1 if i < 7 else 0, now + i)
    for i, pid in enumerate(new):  # 4 of 4 right, given later
        store.add_feedback(pid, 2, now + 100 + i)
    app = create_app(config, start_background=False, store=store)
    assert exporter_of(app).refresh_all()["accuracy"]
    samples = scrape(app.test_client())
    # The window is the newest 12 feedback rows: all 4 of v2 and the newest 8 of v1 (5 right).
    assert sample_value(samples, "mlops_live_labelled_count", model=name, version=v2) == 4
    assert sample_value(samples, "mlops_live_accuracy", model=name, version=v2) == pytest.approx(1.0)
    assert sample_value(samples, "mlops_live_labelled_count", model=name, version=v1) == 8
    assert sample_value(samples, "mlops_live_accuracy", model=name, version=v1) == pytest.approx(5 / 8)


def test_scrapes_make_no_mlflow_calls_whatever_the_run_count(
    shared_mlflow: MlflowServer, reference: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "exp-scrape-cost"
    client = MlflowClient(shared_mlflow.url)
    two_versions(client, name, reference)
    app = create_app(exporter_config(shared_mlflow.url, tmp_path, name), start_background=False)
    exporter = exporter_of(app)
    http = app.test_client()

    calls: list[str] = []
    send = requests.Session.send

    def counting_send(self: requests.Session, request: requests.PreparedRequest, **kwargs: Any) -> Any:
        if str(request.url).startswith(shared_mlflow.url):
            calls.append(str(request.url))
        return send(self, request, **kwargs)

    monkeypatch.setattr(requests.Session, "send", counting_send)
    experiment = client.get_experiment_by_name(name)
    assert experiment is not None
    experiment_id = experiment.experiment_id
    for batch in (10, 60):
        for _ in range(batch):
            client.create_run(experiment_id)
        exporter.refresh_all()
        calls.clear()
        for _ in range(25):
            samples = scrape(http)
        assert calls == [], f"a scrape called MLflow: {calls[:3]}"
        expected = 2 + (10 if batch == 10 else 70)
        assert sample_value(samples, "mlops_experiment_runs", experiment=name) == expected


def test_run_counter_is_incremental(shared_mlflow: MlflowServer) -> None:
    client = MlflowClient(shared_mlflow.url)
    experiment_id = client.create_experiment("exp-run-counter")
    for _ in range(5):
        client.create_run(experiment_id)
    counter = RunCounter(experiment_id, full_every=5)  # updates 1 and 6 are full counts
    assert counter.update(client) == 5 and counter.last_calls == 1
    for _ in range(3):
        client.create_run(experiment_id)
    assert counter.update(client) == 8  # incremental: only runs from the horizon minus the overlap
    assert counter.update(client) == 8  # nothing new, nothing double-counted
    assert counter.horizon_ms is not None
    client.create_run(experiment_id, start_time=counter.horizon_ms - 5_000)  # started earlier, committed late
    assert counter.update(client) == 9
    assert counter.update(client) == 9 and counter.last_calls == 1
    client.delete_run(client.search_runs([experiment_id], max_results=1)[0].info.run_id)
    assert counter.update(client) == 8  # the periodic full count notices deletions


def test_mlflow_down_keeps_last_values_and_shows_staleness(
    mlflow_server: MlflowServer, wine: pd.DataFrame, reference: pd.DataFrame, tmp_path: Path
) -> None:
    name = "exp-outage"
    client = MlflowClient(mlflow_server.url)
    v1, _ = two_versions(client, name, reference)
    config = exporter_config(mlflow_server.url, tmp_path, name)
    store = PredictionStore(config.prediction_store_url)
    store.create_schema()
    write_predictions(store, wine.drop(columns="prediction").sample(100, random_state=3), v1, name)
    app = create_app(config, start_background=False, store=store)
    exporter = exporter_of(app)
    assert all(exporter.refresh_all().values())
    http = app.test_client()
    before = scrape(http)

    mlflow_server.stop()
    assert exporter.refresh_all() == {
        "registry": False,
        "runs": False,
        "drift": True,
        "accuracy": True,
        "feedback": True,
    }  # cached reference and feature schema
    response = http.get("/metrics")
    assert response.status_code == 200
    after = parse_metrics(response.get_data(as_text=True))
    assert sample_value(after, "mlops_champion_version", model=name) == float(v1)
    assert sample_value(after, "mlops_model_accuracy", model=name, version=v1) == pytest.approx(0.91)
    assert sample_value(after, "mlops_exporter_source_up", source="registry") == 0
    assert sample_value(after, "mlops_exporter_refresh_errors_total", source="registry") == 1
    key = ("mlops_exporter_last_refresh_timestamp_seconds", frozenset({("source", "registry")}))
    assert after[key] == before[key]  # staleness: the timestamp stops moving
    assert sample_value(after, "mlops_exporter_source_up", source="drift") == 1
    assert http.get("/healthz").status_code == 200
    assert "down / not yet" in http.get("/").get_data(as_text=True)

    mlflow_server.start()
    assert exporter.refresh_all()["registry"]
    recovered = scrape(http)
    assert recovered[key] > before[key]
    assert sample_value(recovered, "mlops_exporter_source_up", source="registry") == 1
    assert sample_value(recovered, "mlops_exporter_refresh_errors_total", source="registry") == 1


def test_http_routes_and_bad_requests(shared_mlflow: MlflowServer, tmp_path: Path) -> None:
    app = create_app(exporter_config(shared_mlflow.url, tmp_path, "exp-routes"), start_background=False)
    http = app.test_client()
    assert http.get("/reports/drift").status_code == 404  # no reading yet
    health = http.get("/healthz")
    assert health.status_code == 200 and health.json is not None
    assert set(health.json["sources"]) == {
        "registry",
        "runs",
        "drift",
        "accuracy",
        "feedback",
    }
    assert http.get("/nope").status_code == 404
    assert http.post("/metrics").status_code == 405
    assert http.delete("/healthz").status_code == 405
    exporter_of(app).refresh_all()  # the model does not exist yet: a fresh stack, not an error
    assert exporter_of(app).state.status_copy()["registry"].up
    drift = exporter_of(app).state.drift
    assert drift is not None and drift.status == "no_champion"
    page = http.get("/")
    assert page.status_code == 200 and "does not exist yet" in page.get_data(as_text=True)
    samples = scrape(http)
    assert sample_value(samples, "mlops_champion_version", model="exp-routes") is None
    assert any(metric.startswith("flask_http_request") for metric, _ in samples)


def test_multiprocess_mode_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    with pytest.raises(RuntimeError, match="single-process"):
        create_app(exporter_config("http://127.0.0.1:1", tmp_path, "x"), start_background=False)


def test_python_m_entry_serves_with_gunicorn(
    shared_mlflow: MlflowServer, reference: pd.DataFrame, tmp_path: Path
) -> None:
    name = "exp-entry"
    two_versions(MlflowClient(shared_mlflow.url), name, reference)
    port = free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "MLFLOW_TRACKING_URI": shared_mlflow.url,
        "MLSTACK__PROJECT__REGISTERED_MODEL": name,
        "MLSTACK__PROJECT__EXPERIMENT": name,
        "MLSTACK__SERVICES__STATE_DIR": str(tmp_path / "state"),
        "MLSTACK__EXPORTER__REFRESH_INTERVAL_S": "1",
    }
    base = f"http://127.0.0.1:{port}"
    argv = [
        sys.executable,
        "-m",
        "mlstack_exporter",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--threads",
        "2",
    ]
    exporter = ServiceProcess(
        "exporter", argv, base, tmp_path / "exporter.log", ready_path="/healthz", env=env
    )
    exporter.start(timeout=90)
    try:

        def champion_exported() -> bool:
            return sample_value(scrape_url(base), "mlops_champion_version", model=name) == 1.0

        wait_until(champion_exported, timeout=30, what="champion gauge over HTTP")
        assert requests.get(f"{base}/", timeout=5).status_code == 200
    finally:
        code = exporter.stop(timeout=20)
    assert code == 0, exporter.log_tail()


def test_entry_rejects_bad_arguments() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mlstack_exporter", "--threads", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "--threads must be at least 1" in result.stderr
