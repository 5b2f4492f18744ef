"""The predictor as a real uvicorn process against a real MLflow server with really trained versions.

Covers: serving the champion with the runtime its tags allow, hot swap on an alias move under
load with zero failed requests, serving through an MLflow outage, admin reload auth, ONNX/sklearn
parity and fallback, and a complete prediction log after a graceful stop. Nothing is mocked.
"""

from __future__ import annotations

import signal
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import mlflow
import numpy as np
import pytest
import requests
from mlflow import MlflowClient
from mlstack_api.model import load_version
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mlstack.data import load_base_dataset, split
from mlstack.registry import configure_fail_fast_client as configure_mlflow_client
from mlstack.registry import move_alias
from mlstack.store import PredictionStore
from tests.support.metrics import metric_total, scrape
from tests.support.mlflow_server import MlflowServer
from tests.support.net import wait_until
from tests.support.pipeline import TrainedRegistry, isolated_config, run_training
from tests.support.services import ApiProcess, preserved_process_globals, run_api, served_version
from tests.support.traffic import Traffic

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _isolate_mlflow_client() -> Iterator[None]:
    # In-process apps repoint MLflow's global client and the GIL interval; other tests must not inherit that.
    with preserved_process_globals():
        yield


TOKEN = "integration-admin-token"
FAST = {"api.reload_interval_s": 0.3}


def typical_instance(api_url: str) -> dict[str, float]:
    schema = requests.get(f"{api_url}/schema", timeout=5).json()
    return {f["name"]: f["typical"] for f in schema["features"]}


def metric(api_url: str, name: str, **labels: str) -> float:
    """The predictor's total over the series of `name` whose labels include `labels` (0 if none)."""
    return metric_total(scrape(api_url), name, **labels) or 0.0


def champion(registry: TrainedRegistry) -> str:
    client = MlflowClient(tracking_uri=registry.tracking_uri)
    return str(client.get_model_version_by_alias(registry.model_name, "champion").version)


@pytest.fixture(scope="module")
def champion_api(
    trained_registry: TrainedRegistry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiProcess]:
    config = trained_registry.config(**FAST)
    with run_api(config, tmp_path_factory.mktemp("champion-api"), admin_token=TOKEN) as api:
        yield api


def test_serves_the_champion_with_the_runtime_its_tags_allow(
    champion_api: ApiProcess, trained_registry: TrainedRegistry
) -> None:
    client = MlflowClient(tracking_uri=trained_registry.tracking_uri)
    version = client.get_model_version_by_alias(trained_registry.model_name, "champion")
    expected_runtime = "onnx" if version.tags.get("onnx_parity") == "passed" else "sklearn"
    info = requests.get(f"{champion_api.url}/version", timeout=5).json()
    assert info["model"] == {
        "name": trained_registry.model_name,
        "version": str(version.version),
        "alias": "champion",
        "run_id": version.run_id,
        "runtime": expected_runtime,
    }
    response = requests.post(
        f"{champion_api.url}/predict", json={"instances": [typical_instance(champion_api.url)]}, timeout=5
    )
    assert response.status_code == 200, response.text
    assert response.json()["model"]["runtime"] == expected_runtime
    assert (
        metric(champion_api.url, "mlops_model_info", version=str(version.version), runtime=expected_runtime)
        == 1
    )


def test_admin_reload_needs_the_right_token(champion_api: ApiProcess) -> None:
    url = f"{champion_api.url}/admin/reload"
    assert requests.post(url, timeout=10).status_code == 401
    assert requests.post(url, headers={"Authorization": "Bearer wrong"}, timeout=10).status_code == 401
    response = requests.post(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["result"] == "unchanged"


def test_onnx_and_sklearn_agree_and_sklearn_is_the_fallback(
    trained_registry: TrainedRegistry, tmp_path: Path
) -> None:
    config = trained_registry.config()
    configure_mlflow_client(trained_registry.tracking_uri)
    client = MlflowClient(tracking_uri=trained_registry.tracking_uri)
    name = trained_registry.model_name
    version = client.get_model_version_by_alias(name, "champion")
    if version.tags.get("onnx_parity") != "passed":
        pytest.fail(
            f"the champion's ONNX parity is {version.tags.get('onnx_parity')!r}; training should pass it"
        )

    onnx_model = load_version(client, name, version, "champion")
    sklearn_model = load_version(client, name, version, "champion", prefer_onnx=False)
    assert (onnx_model.runtime, sklearn_model.runtime) == ("onnx", "sklearn")
    x_test = split(load_base_dataset(config.data), config).x_test[onnx_model.schema.feature_names]
    matrix = x_test.to_numpy(dtype=np.float32)
    onnx_p, sklearn_p = onnx_model.predict_proba(matrix), sklearn_model.predict_proba(matrix)
    assert np.abs(onnx_p - sklearn_p).max() <= config.training.onnx.probability_tolerance
    assert (onnx_p.argmax(axis=1) == sklearn_p.argmax(axis=1)).all()

    # The same logged model under another name, with tags that must each lead to sklearn.
    fallback = f"{name}-runtime-fallback"
    cases = {
        "no tags": {},
        "parity failed": {"onnx_parity": "failed", "onnx_artifact": "onnx/model.onnx"},
        "artifact missing": {"onnx_parity": "passed", "onnx_artifact": "onnx/not-there.onnx"},
    }
    for case, tags in cases.items():
        registered = mlflow.register_model(version.source, fallback, tags=tags)
        loaded = load_version(
            client, fallback, client.get_model_version(fallback, registered.version), "champion"
        )
        assert loaded.runtime == "sklearn", case
        assert np.abs(loaded.predict_proba(matrix) - sklearn_p).max() == 0, case

    # End to end: a service following that name reports the sklearn runtime everywhere.
    client.set_registered_model_alias(fallback, "champion", registered.version)
    fallback_config = trained_registry.config(**FAST, **{"project.registered_model": fallback})
    with run_api(fallback_config, tmp_path / "fallback-api") as api:
        assert requests.get(f"{api.url}/version", timeout=5).json()["model"]["runtime"] == "sklearn"
        assert metric(api.url, "mlops_model_info", version=str(registered.version), runtime="sklearn") == 1

        # A version that cannot be served (logged without the feature schema): the alias moves to it,
        # the service counts the failure, says why, and keeps serving the last good version.
        mlflow.set_experiment("api-tests")
        with mlflow.start_run():
            fitted = make_pipeline(StandardScaler(), LogisticRegression()).fit(
                x_test, sklearn_p.argmax(axis=1)
            )
            logged = mlflow.sklearn.log_model(fitted, name="model", serialization_format="cloudpickle")
        broken = mlflow.register_model(logged.model_uri, fallback)
        client.set_registered_model_alias(fallback, "champion", broken.version)
        wait_until(
            lambda: metric(api.url, "mlops_model_reload_total", result="failure") >= 1,
            timeout=30,
            what="failed load counted",
        )
        info = requests.get(f"{api.url}/version", timeout=5).json()
        assert info["model"]["version"] == str(registered.version)
        assert "feature_schema" in info["last_reload_error"]
        response = requests.post(
            f"{api.url}/predict", json={"instances": [typical_instance(api.url)]}, timeout=5
        )
        assert response.status_code == 200 and response.json()["model"]["version"] == str(registered.version)


def test_alias_move_swaps_the_model_without_a_failed_request(
    trained_registry: TrainedRegistry, tmp_path: Path
) -> None:
    original = champion(trained_registry)
    config = trained_registry.config(**FAST)
    with run_api(config, tmp_path / "api", admin_token=TOKEN) as api:
        assert served_version(api.url) == original
        instance = typical_instance(api.url)
        # A new version trained by the real pipeline and promoted: picked up without a restart.
        new = trained_registry.train_and_promote(models=["logistic_regression"])
        assert new != original
        wait_until(lambda: served_version(api.url) == new, timeout=30, what=f"api serving version {new}")

        # Then roll the alias back while a client hammers /predict: every request must succeed.
        client = MlflowClient(tracking_uri=trained_registry.tracking_uri)
        with Traffic(api.url, instance, workers=4, max_seconds=20) as traffic:
            wait_until(lambda: traffic.served(new) >= 20, timeout=15, what=f"load on version {new}")
            move_alias(
                client, trained_registry.model_name, "champion", original, reason="test: swap under load"
            )
            wait_until(lambda: served_version(api.url) == original, timeout=15, what=f"back on {original}")
            wait_until(lambda: traffic.served(original) >= 20, timeout=15, what=f"load on version {original}")
        hammer = traffic.stop()
        assert not hammer.failures, hammer.examples
        assert hammer.versions[new] > 0 and hammer.versions[original] > 0, hammer.versions
        assert metric(api.url, "mlops_model_reload_total", result="success") >= 3  # initial + two swaps
        assert metric(api.url, "mlops_model_reload_total", result="failure") == 0
        assert metric(api.url, "mlops_model_info", version=original) == 1  # one series: the served model
        assert metric(api.url, "mlops_model_info", version=new) == 0
    assert champion(trained_registry) == original


def test_keeps_serving_while_mlflow_is_down(mlflow_server: MlflowServer, tmp_path: Path) -> None:
    config = isolated_config(mlflow_server.url, tmp_path / "state", models=["logistic_regression"], **FAST)
    state = run_training(config)
    assert state.promoted, state.results
    with run_api(config, tmp_path / "api") as api:
        version = served_version(api.url)
        instance = typical_instance(api.url)
        failures_before = metric(api.url, "mlops_model_reload_total", result="failure")
        mlflow_server.stop()
        wait_until(
            lambda: metric(api.url, "mlops_model_reload_total", result="failure") >= failures_before + 3,
            timeout=30,
            what="failed alias polls counted",
        )
        for _ in range(20):
            response = requests.post(f"{api.url}/predict", json={"instances": [instance]}, timeout=5)
            assert response.status_code == 200, response.text
            assert response.json()["model"]["version"] == version
        assert requests.get(f"{api.url}/readyz", timeout=5).status_code == 200
        assert "cannot resolve" in requests.get(f"{api.url}/version", timeout=5).json()["last_reload_error"]

        mlflow_server.start()
        unchanged = metric(api.url, "mlops_model_reload_total", result="unchanged")
        wait_until(
            lambda: metric(api.url, "mlops_model_reload_total", result="unchanged") > unchanged,
            timeout=30,
            what="polls succeeding again",
        )
        assert served_version(api.url) == version


def test_requests_waiting_for_their_commit_at_sigterm_are_committed_and_answered(
    trained_registry: TrainedRegistry, tmp_path: Path
) -> None:
    """SIGTERM while 8 requests wait for their commit: no new connections, the 8 finish and are stored."""
    database = tmp_path / "log.db"
    config = trained_registry.config(
        **{"prediction_store.url": f"sqlite:///{database}", "prediction_store.commit_timeout_s": 120}
    )
    with run_api(config, tmp_path / "api") as api:
        instance = typical_instance(api.url)

        def post(i: int) -> list[str]:
            rows = [instance] * (1 + i % 3)
            response = requests.post(f"{api.url}/predict", json={"instances": rows}, timeout=120)
            assert response.status_code == 200, response.text
            return [p["id"] for p in response.json()["predictions"]]

        def refuses_connections() -> bool:
            try:
                requests.get(f"{api.url}/healthz", timeout=2)
            except requests.ConnectionError:
                return True
            return False

        # Another connection holds SQLite's write lock: the requests' commit waits (busy timeout).
        locker = sqlite3.connect(database, isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        try:
            with ThreadPoolExecutor(max_workers=8) as pool:
                futures = [pool.submit(post, i) for i in range(8)]
                wait_until(
                    lambda: metric(api.url, "mlops_prediction_log_queue_depth") == 15,
                    30,
                    interval=0.05,
                    what="8 requests (15 rows) waiting for their commit",
                )
                api.process.send_signal(signal.SIGTERM)
                wait_until(refuses_connections, 30, interval=0.05, what="uvicorn shutting down")
                assert not any(f.done() for f in futures) and api.process.poll() is None
                locker.execute("ROLLBACK")
                ids = [pid for future in futures for pid in future.result(timeout=60)]
        finally:
            locker.close()
        # uvicorn finished the in-flight requests, ran the lifespan shutdown, then re-raised SIGTERM.
        assert api.stop(timeout=30) in (0, -signal.SIGTERM), api.log_tail()
    assert len(ids) == 15 and len(set(ids)) == 15
    store = PredictionStore(config.prediction_store_url)
    try:
        assert store.prediction_ids() == set(ids)
    finally:
        store.dispose()
