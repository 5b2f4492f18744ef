"""Faults survived, with real processes: the prediction store down or slow under traffic, the predictor
SIGKILLed under load (SQLite and PostgreSQL), and MLflow down when a pipeline starts.

Every test counts: requests sent, predictions acknowledged (200 responses), stored and lost.
The numbers are printed (`pytest -s`) and written to test-artifacts/faults.json.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import requests

from mlstack import registry
from mlstack.config import REPO_ROOT, Config
from mlstack.pipeline import PipelineError
from mlstack.store import PredictionStore
from tests.support.metrics import metric_total, sample_value, scrape
from tests.support.mlflow_server import MlflowServer
from tests.support.net import free_port, wait_until
from tests.support.pipeline import TrainedRegistry, isolated_config, run_training
from tests.support.postgres import PostgresCluster, postgres_cluster
from tests.support.services import ApiProcess, run_api
from tests.support.traffic import Traffic
from tests.support.traffic import record_numbers as record

pytestmark = pytest.mark.integration


def api_metric(api: ApiProcess, name: str, **labels: str) -> float:
    value = sample_value(scrape(api.url), name, **labels)
    assert value is not None, f"{name}{labels or ''} missing from /metrics"
    return value


def api_metric_sum(api: ApiProcess, name: str) -> float:
    """The sum over every label set of `name` (e.g. refusals of every reason)."""
    return metric_total(scrape(api.url), name) or 0.0


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
            "api.reload_interval_s": 1.0,
            **overrides,
        }
    )


@pytest.mark.parametrize("how", ["fast", "kill"])
def test_store_outage_under_traffic_refuses_with_503_and_loses_no_acknowledged_prediction(
    how: str,
    postgres: PostgresCluster,
    predictions_db: str,
    trained_registry: TrainedRegistry,
    tmp_path: Path,
) -> None:
    """PostgreSQL stops (`pg_ctl stop -m fast`, or SIGKILL of every server process) for 3 s under traffic.

    Acknowledged means stored: while the store is down the predictor answers 503 with Retry-After
    (never 200 for a prediction it could not store); after the restart it serves 200 again.
    """
    config = store_config(trained_registry, predictions_db)
    with run_api(config, tmp_path / "api") as api:
        instance = typical_instance(api)
        with Traffic(api.url, instance, workers=4, max_seconds=60) as traffic:
            wait_until(lambda: traffic.acknowledged >= 200, 30, interval=0.05, what="traffic flowing")
            if how == "fast":
                postgres.stop("fast")
            else:
                postgres.kill()
            down_at = time.monotonic()
            wait_until(lambda: traffic.result().failures["503"] >= 20, 30, interval=0.05, what="503s")
            during = requests.post(f"{api.url}/predict", json={"instances": [instance]}, timeout=10)
            acknowledged_during = traffic.acknowledged
            time.sleep(max(0.0, 3.0 - (time.monotonic() - down_at)))  # the outage lasts 3 s
            postgres.start()
            outage_s = time.monotonic() - down_at
            wait_until(
                lambda: traffic.acknowledged >= acknowledged_during + 200,
                30,
                interval=0.05,
                what="traffic after",
            )
            result = traffic.stop()
        write_errors = api_metric(api, "mlops_prediction_log_write_errors_total")
        refused = api_metric_sum(api, "mlops_prediction_log_refused_total")
        log = api.log_tail(200_000)
    stored = stored_ids(predictions_db)
    lost = set(result.acked) - stored
    record(
        f"store_outage_{how}",
        {
            "requests_sent": result.sent,
            "acknowledged": result.acknowledged,
            "outage_s": round(outage_s, 2),
            "stored": len(stored),
            "lost": len(lost),
            "refused_predictions": refused,
            "write_errors_total": write_errors,
            "failed_requests": dict(result.failures),
        },
    )
    assert during.status_code == 503, during.text
    assert int(during.headers["Retry-After"]) >= 1
    assert "prediction store is unavailable" in during.json()["detail"]
    assert set(result.failures) == {"503"}, result.failures  # refused, never a 500 or a hang
    assert write_errors > 0 and refused >= result.failures["503"]
    assert "refusing predictions (503)" in log
    assert not lost, f"{len(lost)} acknowledged predictions are not in the store"


def test_a_store_slower_than_the_traffic_fills_the_bounded_queue_and_refuses_the_rest(
    postgres: PostgresCluster,
    predictions_db: str,
    trained_registry: TrainedRegistry,
    tmp_path: Path,
) -> None:
    """Another session locks the predictions table: requests wait for their commit up to `queue_size` rows,
    the rest get 503 at once instead of growing the queue; unlocked, the waiting ones commit and get 200."""
    queue_size = 300
    overrides = {
        "prediction_store.queue_size": queue_size,
        "prediction_store.commit_timeout_s": 60,
        "api.max_batch": 100,
    }
    config = store_config(trained_registry, predictions_db, **overrides)
    with run_api(config, tmp_path / "api") as api:
        instance = typical_instance(api)
        locker = psycopg2.connect(postgres.dsn(predictions_db.rsplit("/", 1)[-1]))
        try:
            with locker.cursor() as cur:
                cur.execute("LOCK TABLE predictions IN EXCLUSIVE MODE")  # reads work, writes wait
            # 80 clients x 5 rows, 100 requests: 60 fill the queue (300 rows) and wait, 40 are refused.
            traffic = Traffic(api.url, instance, workers=80, rows=5, max_requests=100, timeout=60)
            traffic.start()
            wait_until(lambda: traffic.result().failures["503"] == 40, 60, interval=0.05, what="40 refusals")
            depth = api_metric(api, "mlops_prediction_log_queue_depth")
            assert traffic.acknowledged == 0
        finally:
            locker.rollback()
            locker.close()
        result = traffic.wait()
        full = api_metric(api, "mlops_prediction_log_refused_total", reason="full")
        log = api.log_tail(200_000)
    stored = stored_ids(predictions_db)
    record(
        "slow_store_bounded_queue",
        {
            "requests_sent": result.sent,
            "acknowledged": result.acknowledged,
            "queue_size": queue_size,
            "queue_depth_while_locked": depth,
            "stored": len(stored),
            "refused_predictions": full,
        },
    )
    assert depth == queue_size
    assert result.failures == {"503": 40} and result.acknowledged == queue_size
    assert stored == set(result.acked)
    assert "queue_size=300" in log and "refusing predictions (503)" in log


def load_from_another_process(
    api_url: str, instance: dict[str, float], workdir: Path
) -> subprocess.Popen[bytes]:
    """`python -m tests.support.traffic`: 8 clients x 5 rows; acknowledged ids go to `workdir/acked`."""
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable, "-m", "tests.support.traffic", "--url", api_url, "--instance", json.dumps(instance),
        "--acked", str(workdir / "acked"), "--summary", str(workdir / "summary.json"),
        "--workers", "8", "--rows", "5", "--max-seconds", "240",
    ]  # fmt: skip
    log = (workdir / "traffic.log").open("wb")
    return subprocess.Popen(argv, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)


def acked_ids(workdir: Path) -> list[str]:
    path = workdir / "acked"
    if not path.exists():
        return []
    return [
        line for line in path.read_text().split("\n") if len(line) == 32
    ]  # a partial last line is not an ack


@pytest.mark.parametrize(
    ("backend", "workers"), [("sqlite", 1), ("sqlite", 2), ("postgresql", 1), ("postgresql", 2)]
)
def test_sigkill_under_load_loses_no_acknowledged_prediction(
    backend: str,
    workers: int,
    trained_registry: TrainedRegistry,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """README "Acknowledged means stored": SIGKILL mid-load, restart, and every acknowledged id is stored.

    The load comes from a separate process that records each id only after its 200 response
    arrived, so the kill cannot take the client's record with it. The count is asserted (0 missing),
    not a timing.
    """
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'predictions.db'}"
    else:
        url = request.getfixturevalue("predictions_db")
    config = store_config(trained_registry, url)
    port = free_port()
    load_dir = tmp_path / "load"
    with run_api(config, tmp_path / "api", port=port, workers=workers) as api:
        load = load_from_another_process(api.url, typical_instance(api), load_dir)
        try:
            wait_until(lambda: len(acked_ids(load_dir)) >= 3000, 120, interval=0.05, what="3000 acks")
            api.kill()  # SIGKILL to the parent and every worker at once
            acked_before_kill = len(acked_ids(load_dir))
            with run_api(config, tmp_path / "api", port=port, workers=workers) as restarted:
                wait_until(
                    lambda: len(acked_ids(load_dir)) >= acked_before_kill + 1000,
                    120,
                    interval=0.05,
                    what="acks after the restart",
                )
                load.send_signal(signal.SIGTERM)
                load.wait(timeout=60)
                assert restarted.stop() in (0, -signal.SIGTERM), restarted.log_tail()
        finally:
            if load.poll() is None:
                load.kill()
    assert api.process.returncode == -signal.SIGKILL
    summary = json.loads((load_dir / "summary.json").read_text())
    acked = acked_ids(load_dir)
    stored = stored_ids(url)
    missing = set(acked) - stored
    numbers = {
        "backend": backend,
        "workers": workers,
        "requests_sent": summary["sent"],
        "acknowledged": len(acked),
        "acknowledged_before_kill": acked_before_kill,
        "stored": len(stored),
        "missing": len(missing),
        "failed_requests": summary["failures"],
    }
    record(f"sigkill_{backend}_{workers}w", numbers)
    assert len(acked) == len(set(acked)) == summary["acknowledged"]
    assert len(acked) >= 4000, numbers
    assert len(missing) == 0, numbers


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
