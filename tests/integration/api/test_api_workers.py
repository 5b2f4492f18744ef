"""Several uvicorn workers in one predictor: metrics summed over workers, each worker hot-reloads.

Real processes: `python -m mlstack_api --workers 2` (the one command line) against the session's
real MLflow server. Requests use a fresh connection each, so the kernel spreads them over the
workers; the test checks that both workers answered before it trusts any sum.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from mlflow import MlflowClient
from prometheus_client.parser import text_string_to_metric_families

from mlstack.registry import move_alias
from mlstack.store import PredictionStore
from tests.support.net import wait_until
from tests.support.pipeline import TrainedRegistry
from tests.support.services import ApiProcess, run_api

pytestmark = pytest.mark.integration

WORKERS = 2


def scrape(api: ApiProcess) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = requests.get(f"{api.url}/metrics", timeout=10).text  # a new connection: any worker may answer
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for (n, found), v in samples.items() if n == name and wanted <= found)


def version_answers(api: ApiProcess, count: int) -> list[dict[str, Any]]:
    """`count` /version answers, several at a time, each on a new connection."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(lambda _: requests.get(f"{api.url}/version", timeout=10).json(), range(count)))


def test_metrics_sum_every_worker_and_each_worker_reloads_on_its_own(
    trained_registry: TrainedRegistry, tmp_path: Path
) -> None:
    original = trained_registry.first_version
    config = trained_registry.config(
        **{"prediction_store.url": f"sqlite:///{tmp_path / 'log.db'}", "api.reload_interval_s": 0.5}
    )
    with run_api(config, tmp_path / "api", workers=WORKERS) as api:
        wait_until(
            lambda: len({a["worker"]["pid"] for a in version_answers(api, 16)}) == WORKERS,
            60,
            what="both workers ready and answering",
        )
        schema = requests.get(f"{api.url}/schema", timeout=10).json()
        instance = {f["name"]: f["typical"] for f in schema["features"]}
        sizes = [1 + i % 4 for i in range(240)]  # 240 requests, 600 predictions

        def post(rows: int) -> int:
            response = requests.post(f"{api.url}/predict", json={"instances": [instance] * rows}, timeout=30)
            assert response.status_code == 200, response.text
            return len(response.json()["predictions"])

        with ThreadPoolExecutor(max_workers=8) as pool:
            answered = sum(pool.map(post, sizes))
        pids = Counter(a["worker"]["pid"] for a in version_answers(api, 40))
        assert len(pids) == WORKERS, f"requests did not reach both workers: {pids}"
        assert all(a["worker"]["workers"] == WORKERS for a in version_answers(api, 4))

        # Whichever worker answers the scrape, it reports the sum over all workers.
        for _ in range(6):
            samples = scrape(api)
            assert total(samples, "mlops_http_requests_total", route="/predict", status="200") == len(sizes)
            assert total(samples, "mlops_predictions_total") == answered == sum(sizes)
            assert total(samples, "mlops_prediction_batch_size_count") == len(sizes)
            assert total(samples, "mlops_prediction_log_written_total") == sum(sizes)
            assert total(samples, "mlops_prediction_log_queue_depth") == 0
            assert total(samples, "mlops_model_reload_total", result="success") == WORKERS  # one load each
            info = {labels: v for (n, labels), v in samples.items() if n == "mlops_model_info"}
            assert list(info.values()) == [1.0] and ("version", original) in next(iter(info))

        # A new champion: every worker notices and swaps on its own; then the info shows only it.
        new = trained_registry.train_and_promote(models=["logistic_regression"])
        try:
            served: dict[int, str] = {}

            def all_swapped() -> bool:
                for answer in version_answers(api, 16):
                    served[answer["worker"]["pid"]] = answer["model"]["version"]
                return len(served) == WORKERS and set(served.values()) == {new}

            wait_until(all_swapped, 60, what=f"every worker serving version {new}")
            samples = scrape(api)
            versions = {dict(labels)["version"] for (n, labels) in samples if n == "mlops_model_info"}
            assert versions == {new}
            assert total(samples, "mlops_model_reload_total", result="success") == 2 * WORKERS
        finally:
            move_alias(
                MlflowClient(tracking_uri=trained_registry.tracking_uri),
                trained_registry.model_name,
                "champion",
                original,
                reason="test: restore the session's champion",
            )

        # A worker killed outright is replaced by uvicorn; its counts stay in the sums, its gauges go.
        victim = next(iter(served))
        os.kill(victim, signal.SIGKILL)
        wait_until(
            lambda: (
                victim not in {a["worker"]["pid"] for a in version_answers(api, 16)}
                and len({a["worker"]["pid"] for a in version_answers(api, 16)}) == WORKERS
            ),
            90,
            what="the killed worker replaced",
        )
        samples = scrape(api)
        assert total(samples, "mlops_http_requests_total", route="/predict", status="200") == len(sizes)
        assert api.stop() in (0, -signal.SIGTERM), api.log_tail()
    store = PredictionStore(config.prediction_store_url)
    try:
        assert store.count_predictions() == sum(sizes)
    finally:
        store.dispose()
