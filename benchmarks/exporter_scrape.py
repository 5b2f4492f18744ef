"""Exporter benchmark: scrape latency and refresh cost with 1,000 / 10,000 runs; drift refresh time.

Not a test: it measures and reports. `run(sizes, quick)` returns a dict;
`python -m benchmarks.exporter_scrape` prints it as JSON (and writes it with --out).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import requests
from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlRun, SqlTag
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
from mlflow.tracking import MlflowClient

from mlstack.config import Config, DataConfig, load_config
from mlstack.data import load_base_dataset
from mlstack.drift import MAX_CURRENT_ROWS, compute_drift, write_html_report
from mlstack.drift_report import read_window
from mlstack.registry import move_alias
from mlstack.store import PredictionRecord, PredictionStore
from tests.support.mlflow_server import MlflowServer
from tests.support.net import free_port, wait_until

MODEL = "bench-model"
EXPERIMENT = "bench"
METRICS = ("accuracy", "precision_weighted", "recall_weighted", "f1_weighted")
DRIFT_ROWS = (1_000, 10_000, 100_000)


def bulk_load_runs(db_path: Path, artifacts: Path, runs: int) -> str:
    """Create `runs` finished runs with four metrics each, straight into the SQLite tracking DB.

    The store's own schema and ORM models are used (SqlAlchemyStore runs the migrations), so the
    server reads them as ordinary runs; one transaction instead of 2 HTTP calls per run.
    """
    store = SqlAlchemyStore(f"sqlite:///{db_path}", str(artifacts))
    experiment_id = store.create_experiment(EXPERIMENT, artifact_location=str(artifacts / "bench"))
    rng = np.random.default_rng(0)
    base = int(time.time() * 1000) - runs * 1000
    with store.ManagedSessionMaker() as session:
        for i in range(runs):
            run_id = uuid.uuid4().hex
            start = base + i * 1000
            values = rng.uniform(0.8, 1.0, size=len(METRICS))
            session.add(
                SqlRun(
                    run_uuid=run_id, name=f"bench-{i}", experiment_id=experiment_id,
                    artifact_uri=str(artifacts / "bench" / run_id / "artifacts"), source_type="LOCAL",
                    source_name="", entry_point_name="", user_id="bench", status="FINISHED",
                    start_time=start, end_time=start + 500, deleted_time=None, source_version="",
                    lifecycle_stage="active",
                )
            )  # fmt: skip
            for key, value in zip(METRICS, values, strict=True):
                session.add(SqlMetric(run_uuid=run_id, key=key, value=float(value), timestamp=start, step=0))
                session.add(
                    SqlLatestMetric(run_uuid=run_id, key=key, value=float(value), timestamp=start, step=0)
                )
            session.add(SqlTag(run_uuid=run_id, key="data_hash", value="bench"))
    store.engine.dispose()
    return str(experiment_id)


def register_versions(client: MlflowClient, experiment_id: str, versions: int = 5) -> None:
    """A registered model whose versions point at the newest runs; the last one is champion."""
    client.create_registered_model(MODEL)
    runs = client.search_runs([experiment_id], max_results=versions, order_by=["attributes.start_time DESC"])
    last = ""
    for run in runs:
        last = client.create_model_version(MODEL, f"{run.info.artifact_uri}/model", run.info.run_id).version
    move_alias(client, MODEL, "champion", str(last), "benchmark")


@contextmanager
def counting_mlflow_calls(base_url: str) -> Iterator[list[str]]:
    """Count HTTP requests this process sends to MLflow (every MLflow client call goes through requests)."""
    calls: list[str] = []
    original = requests.Session.send

    def send(self: requests.Session, request: requests.PreparedRequest, **kwargs: Any) -> Any:
        if str(request.url).startswith(base_url):
            calls.append(str(request.url))
        return original(self, request, **kwargs)

    requests.Session.send = send  # type: ignore[method-assign]
    try:
        yield calls
    finally:
        requests.Session.send = original  # type: ignore[method-assign]


def _timed(refresh: Callable[[], Any], calls: list[str]) -> tuple[Any, float, int]:
    calls.clear()
    started = time.perf_counter()
    result = refresh()
    return result, time.perf_counter() - started, len(calls)


def measure_refresh(config: Config, incremental_rounds: int) -> dict[str, Any]:
    """Time the registry refresh and the run counting: the first (full count) and the incremental ones."""
    from mlstack_exporter.refreshers import RegistryRefresher, RunsRefresher

    client = MlflowClient(config.mlflow.tracking_uri)
    registry = RegistryRefresher(config, client)
    runs = RunsRefresher(config, client, full_recount_every=10_000)
    with counting_mlflow_calls(config.mlflow.tracking_uri) as calls:
        _, registry_first_s, registry_first_calls = _timed(registry.refresh, calls)
        counted, full_s, full_calls = _timed(runs.refresh, calls)
        registry_rounds = [_timed(registry.refresh, calls) for _ in range(incremental_rounds)]
        runs_rounds = [_timed(runs.refresh, calls) for _ in range(incremental_rounds)]
    return {
        "runs_counted": counted.experiment_runs.get(EXPERIMENT),
        "registry_first_refresh_s": round(registry_first_s, 3),
        "registry_first_refresh_mlflow_calls": registry_first_calls,
        "registry_refresh_s_median": round(statistics.median(r[1] for r in registry_rounds), 3),
        "registry_refresh_mlflow_calls": max(r[2] for r in registry_rounds),
        "runs_full_count_s": round(full_s, 3),
        "runs_full_count_mlflow_calls": full_calls,
        "runs_incremental_s_median": round(statistics.median(r[1] for r in runs_rounds), 3),
        "runs_incremental_mlflow_calls": max(r[2] for r in runs_rounds),
    }


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def measure_scrapes(config: Config, workdir: Path, scrapes: int, expected_runs: int) -> dict[str, Any]:
    """Serve the exporter with `python -m mlstack_exporter` (gunicorn) and time sequential scrapes."""
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MLSTACK__")},
        "MLFLOW_TRACKING_URI": config.mlflow.tracking_uri,
        "MLSTACK__PROJECT__REGISTERED_MODEL": MODEL,
        "MLSTACK__PROJECT__EXPERIMENT": EXPERIMENT,
        "MLSTACK__SERVICES__STATE_DIR": str(workdir / "state"),
        "MLSTACK__EXPORTER__REFRESH_INTERVAL_S": "2",
    }
    with (workdir / "exporter.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlstack_exporter", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:

        def counted() -> bool:
            text = requests.get(f"{base}/metrics", timeout=5).text
            return f'mlops_experiment_runs{{experiment="{EXPERIMENT}"}} {float(expected_runs)}' in text

        wait_until(counted, timeout=300, interval=0.5, what="exporter counted the runs")
        session = requests.Session()
        latencies: list[float] = []
        size = 0
        for _ in range(scrapes):
            started = time.perf_counter()
            response = session.get(f"{base}/metrics", timeout=10)
            latencies.append(time.perf_counter() - started)
            response.raise_for_status()
            size = len(response.content)
        return {
            "scrapes": scrapes,
            "scrape_p50_ms": round(percentile(latencies, 50) * 1000, 2),
            "scrape_p99_ms": round(percentile(latencies, 99) * 1000, 2),
            "scrape_max_ms": round(max(latencies) * 1000, 2),
            "body_bytes": size,
        }
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def bench_registry(size: int, quick: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-exporter-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        experiment_id = bulk_load_runs(root / "mlflow" / "mlflow.db", root / "mlflow" / "artifacts", size)
        load_s = time.perf_counter() - started
        server = MlflowServer(root=root / "mlflow", port=free_port()).start()
        try:
            register_versions(MlflowClient(server.url), experiment_id)
            config = load_config(
                overrides={
                    "mlflow.tracking_uri": server.url,
                    "project.registered_model": MODEL,
                    "project.experiment": EXPERIMENT,
                    "services.state_dir": str(root / "state"),
                },
                environ={},
            )
            result = {"runs": size, "bulk_load_s": round(load_s, 2)}
            result.update(measure_refresh(config, incremental_rounds=3 if quick else 10))
            result.update(measure_scrapes(config, root, scrapes=100 if quick else 1000, expected_runs=size))
            return result
        finally:
            server.stop()


def bench_drift(rows: int) -> dict[str, Any]:
    """The exporter's drift refresh for a window of `rows` logged predictions: store read, Evidently, HTML."""
    dataset = load_base_dataset(DataConfig())
    features = dataset.features
    reference = features.sample(500, replace=True, random_state=0).assign(
        prediction=dataset.target.sample(500, replace=True, random_state=0).to_numpy()
    )
    current = features.sample(rows, replace=True, random_state=1).reset_index(drop=True)
    current["alcohol"] += features["alcohol"].std()
    labels = dataset.target.sample(rows, replace=True, random_state=1).to_numpy()
    with tempfile.TemporaryDirectory(prefix="bench-drift-") as tmp:
        store = PredictionStore(f"sqlite:///{Path(tmp) / 'predictions.db'}")
        store.create_schema()
        now = time.time()
        records = [
            PredictionRecord(uuid.uuid4().hex, now + i * 1e-4, MODEL, "1", row, int(labels[i]), [1.0])
            for i, row in enumerate(current.to_dict(orient="records"))
        ]
        for start in range(0, rows, 20_000):
            store.insert_predictions(records[start : start + 20_000])
        started = time.perf_counter()
        window = read_window(store, rows, MAX_CURRENT_ROWS)  # what the exporter's drift refresh reads
        read_s = time.perf_counter() - started
        started = time.perf_counter()
        result = compute_drift(reference, window.frame, list(features.columns), threshold=0.5)
        drift_s = time.perf_counter() - started
        started = time.perf_counter()
        html = write_html_report(result, Path(tmp) / "drift.html")
        html_s = time.perf_counter() - started
        html_bytes = html.stat().st_size
        store.dispose()
    return {
        "rows": rows,
        "window_rows": window.rows,
        "sampled_rows": result.sampled_current_rows,
        "store_read_s": round(read_s, 3),
        "evidently_s": round(drift_s, 3),
        "html_write_s": round(html_s, 3),
        "total_s": round(read_s + drift_s + html_s, 3),
        "html_bytes": html_bytes,
        "alcohol_drifted": result.features["alcohol"].drifted,
    }


def run(sizes: list[int], quick: bool) -> dict[str, Any]:
    """Benchmark the exporter with each run count in `sizes`; `quick` trims repetitions and drift windows."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    drift_rows = DRIFT_ROWS[:2] if quick else DRIFT_ROWS
    return {
        "benchmark": "exporter_scrape",
        "quick": quick,
        "registry": [bench_registry(size, quick) for size in sizes],
        "drift": [bench_drift(rows) for rows in drift_rows],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.exporter_scrape", description=__doc__)
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated run counts")
    parser.add_argument("--quick", action="store_true", help="fewer scrapes, drift windows up to 10k rows")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON result here")
    args = parser.parse_args(argv)
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--sizes must be comma-separated integers, got {args.sizes!r}")
    if not sizes or min(sizes) < 1:
        parser.error("--sizes needs at least one positive run count")
    result = run(sizes, args.quick)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
