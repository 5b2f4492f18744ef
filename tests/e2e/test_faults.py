"""Faults survived, with real processes: the prediction store restarting under traffic, a full buffer,
the predictor SIGKILLed under load, and MLflow down when a pipeline starts.

Every test counts: requests sent, predictions acknowledged (200 responses), stored and lost.
The numbers are printed (`pytest -s`) and written to test-artifacts/faults.json.
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from mlstack import registry
from mlstack.config import Config
from mlstack.pipeline import PipelineError
from mlstack.store import PredictionStore
from tests.support.metrics import sample_value, scrape
from tests.support.mlflow_server import MlflowServer
from tests.support.net import wait_until
from tests.support.pipeline import TrainedRegistry, isolated_config, run_training
from tests.support.postgres import PostgresCluster, postgres_cluster
from tests.support.services import ApiProcess, run_api
from tests.support.traffic import Traffic, TrafficResult
from tests.support.traffic import record_numbers as record

pytestmark = pytest.mark.integration

FLUSH_INTERVAL_S = 0.2  # the default (README "Prediction-log loss bound")
COMMIT_SLACK_S = 0.1  # a batch commit plus scheduling jitter on a loaded 2-core machine


def api_metric(api: ApiProcess, name: str) -> float:
    value = sample_value(scrape(api.url), name)
    assert value is not None, f"{name} missing from /metrics"
    return value


def typical_instance(api: ApiProcess) -> dict[str, float]:
    schema = requests.get(f"{api.url}/schema", timeout=5).json()
    return {f["name"]: f["typical"] for f in schema["features"]}


def stored_ids(url: str) -> set[str]:
    store = PredictionStore(url)
    try:
        return store.prediction_ids()
    finally:
        store.dispose()


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresCluster]:
    with postgres_cluster() as cluster:
        yield cluster


@pytest.fixture
def predictions_db(postgres: PostgresCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh predictions database of this test's own on the module's cluster."""
    name = "p_" + "".join(ch if ch.isalnum() else "_" for ch in request.node.name.lower())[:50]
    if not postgres.is_running():
        postgres.start()
    postgres.drop_database(name)
    yield postgres.create_database(name)
    if not postgres.is_running():
        postgres.start()


def store_config(trained_registry: TrainedRegistry, url: str, **overrides: Any) -> Config:
    return trained_registry.config(
        **{
            "prediction_store.url": url,
            "prediction_store.flush_interval_s": FLUSH_INTERVAL_S,
            "api.reload_interval_s": 1.0,
            **overrides,
        }
    )


@pytest.mark.parametrize("how", ["fast", "kill"])
def test_store_restart_under_traffic_loses_no_acknowledged_prediction(
    how: str,
    postgres: PostgresCluster,
    predictions_db: str,
    trained_registry: TrainedRegistry,
    tmp_path: Path,
) -> None:
    """PostgreSQL stops (`pg_ctl stop -m fast`, or SIGKILL of every server process) for 3 s under traffic."""
    config = store_config(trained_registry, predictions_db)
    with run_api(config, tmp_path / "api") as api:
        with Traffic(api.url, typical_instance(api), workers=4, max_seconds=60) as traffic:
            wait_until(lambda: traffic.acknowledged >= 200, 30, interval=0.05, what="traffic flowing")
            before_outage = traffic.acknowledged
            if how == "fast":
                postgres.stop("fast")
            else:
                postgres.kill()
            down_at = time.monotonic()
            time.sleep(3.0)
            during_outage = traffic.acknowledged - before_outage
            postgres.start()
            outage_s = time.monotonic() - down_at
            after = traffic.acknowledged
            wait_until(lambda: traffic.acknowledged >= after + 200, 30, interval=0.05, what="traffic after")
            result = traffic.stop()
        # Every acknowledged prediction reaches the store once the writer's retry succeeds.
        wait_until(
            lambda: api_metric(api, "mlops_prediction_log_queue_depth") == 0,
            30,
            what="the buffer drained after the restart",
        )
        write_errors = api_metric(api, "mlops_prediction_log_write_errors_total")
        dropped = api_metric(api, "mlops_prediction_log_dropped_total")
        log = api.log_tail(200_000)
    stored = stored_ids(predictions_db)
    lost = set(result.acked) - stored
    record(
        f"store_restart_{how}",
        {
            "requests_sent": result.sent,
            "acknowledged": result.acknowledged,
            "acknowledged_during_outage": during_outage,
            "outage_s": round(outage_s, 2),
            "stored": len(stored),
            "lost": len(lost),
            "dropped_total": dropped,
            "write_errors_total": write_errors,
            "failed_requests": dict(result.failures),
        },
    )
    assert result.failures == {}, result.failures  # the predictor served right through the outage
    assert during_outage > 0, "no prediction was acknowledged while the store was down"
    assert write_errors > 0, "the outage never reached the writer: nothing was tested"
    assert "retrying in" in log
    assert dropped == 0
    assert not lost, f"{len(lost)} acknowledged predictions are not in the store"
    assert stored == set(result.acked)


def test_a_full_buffer_refuses_predictions_instead_of_losing_them(
    postgres: PostgresCluster,
    predictions_db: str,
    trained_registry: TrainedRegistry,
    tmp_path: Path,
) -> None:
    queue_size = 300
    overrides = {"prediction_store.queue_size": queue_size, "api.max_batch": 100}
    config = store_config(trained_registry, predictions_db, **overrides)
    with run_api(config, tmp_path / "api") as api:
        instance = typical_instance(api)
        postgres.stop("fast")
        try:
            # 100 requests x 5 rows while the store is down: 500 predictions for 300 buffer slots.
            traffic = Traffic(api.url, instance, workers=2, rows=5, max_requests=100)
            traffic.start()
            result = traffic.wait()
        finally:
            postgres.start()
        wait_until(
            lambda: api_metric(api, "mlops_prediction_log_queue_depth") == 0, 30, what="buffer drained"
        )
        dropped = api_metric(api, "mlops_prediction_log_dropped_total")
        log = api.log_tail(200_000)
    stored = stored_ids(predictions_db)
    record(
        "buffer_overflow",
        {
            "requests_sent": result.sent,
            "acknowledged": result.acknowledged,
            "queue_size": queue_size,
            "stored": len(stored),
            "dropped_total": dropped,
            "lost_uncounted": result.acknowledged - len(stored) - dropped,
        },
    )
    # The first 60 requests (300 rows) fill the buffer and are acknowledged; the other 40 are refused
    # with 503 before any prediction is acknowledged, so every acknowledged prediction is stored.
    assert result.failures == {"503": 40} and result.acknowledged == queue_size
    assert stored == set(result.acked)
    assert dropped == 0
    assert "prediction log buffer full (300 records): refusing predictions (503)" in log


def sigkill_under_load(api: ApiProcess, seconds: float) -> tuple[TrafficResult, float]:
    """Traffic for `seconds`, then SIGKILL the predictor mid-stream; returns the traffic and kill time."""
    with Traffic(api.url, typical_instance(api), workers=4, max_seconds=60) as traffic:
        time.sleep(seconds)
        killed_at = time.monotonic()
        api.process.send_signal(signal.SIGKILL)
        api.process.wait(timeout=10)
        result = traffic.stop()
    return result, killed_at


def test_sigkill_under_load_loses_at_most_one_flush_interval(
    trained_registry: TrainedRegistry, tmp_path: Path
) -> None:
    """README "Prediction-log loss bound": a crash loses at most the records of the last flush interval.

    The writer takes a batch after at most one interval's wait and commits it; a kill during the
    commit loses that batch plus what arrived during the commit (milliseconds). So every lost record
    was acknowledged less than one interval (plus commit slack) before the kill, and there are no
    more of them than that time holds at the rate measured over the last second before the kill.
    """
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    config = store_config(trained_registry, url)
    with run_api(config, tmp_path / "api") as api:
        result, killed_at = sigkill_under_load(api, seconds=4.0)
        assert api.process.returncode == -signal.SIGKILL
    stored = stored_ids(url)
    lost = set(result.acked) - stored
    ages = sorted(killed_at - result.acked[pid] for pid in lost)
    recent_rate = sum(1 for at in result.acked.values() if killed_at - at <= 1.0) / 1.0
    bound = math.ceil(recent_rate * (FLUSH_INTERVAL_S + COMMIT_SLACK_S))
    numbers = {
        "requests_sent": result.sent,
        "acknowledged": result.acknowledged,
        "rate_last_second_per_s": recent_rate,
        "stored": len(stored),
        "lost": len(lost),
        "records_per_flush_interval": round(recent_rate * FLUSH_INTERVAL_S, 1),
        "asserted_bound": bound,
        "oldest_lost_age_s": round(ages[-1], 3) if ages else None,
    }
    record("sigkill_local", numbers)
    assert result.acknowledged > 200, "too little traffic to measure anything"
    assert not ages or ages[-1] <= FLUSH_INTERVAL_S + COMMIT_SLACK_S, numbers
    assert len(lost) <= bound, numbers


def test_pipeline_with_mlflow_down_fails_fast_and_changes_nothing(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    config = isolated_config(mlflow_server.url, tmp_path / "state", models=["logistic_regression"])
    first = run_training(config)
    assert first.promoted
    client = registry.make_client(config)
    name = config.project.registered_model
    before = (
        registry.champion_version(client, config).version,  # type: ignore[union-attr]
        len(client.search_model_versions(f"name = '{name}'")),
        len(registry.history(client, name)),
    )
    mlflow_server.stop()
    started = time.monotonic()
    with pytest.raises(PipelineError) as failure:
        run_training(config, force=True)
    elapsed = time.monotonic() - started
    message = str(failure.value)
    mlflow_server.start()
    after = (
        registry.champion_version(client, config).version,  # type: ignore[union-attr]
        len(client.search_model_versions(f"name = '{name}'")),
        len(registry.history(client, name)),
    )
    record("pipeline_mlflow_down", {"seconds_to_fail": round(elapsed, 2), "message": message})
    assert "validate-data" in message and "not reachable" in message and mlflow_server.url in message
    assert elapsed < 15, f"took {elapsed:.1f}s to fail"
    assert after == before
