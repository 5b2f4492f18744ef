"""Every Grafana panel query and recording rule returns data from Prometheus scraping the real stack."""

from __future__ import annotations

import os
import secrets
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml

from mlstack.config import Config, load_config
from mlstack.contract import FEEDBACK_TOKEN_ENV
from mlstack.data import load_base_dataset
from mlstack.monitoring.names import CLIENT_ERROR_RATIO, VERSION_REQUEST_RATE
from mlstack.monitoring.render import render_monitoring
from mlstack.pipeline import Options, Pipeline
from mlstack.runtime.local import api_command, exporter_command
from tests.support.net import free_port, wait_until
from tests.support.pipeline import NoServicesRuntime, isolated_config, run_training
from tests.support.process import ServiceProcess, run_service
from tests.support.prom import (
    PanelQuery,
    PrometheusAPI,
    WebhookSink,
    annotation_queries,
    load_dashboards,
    panel_queries,
    run_alertmanager,
    run_prometheus,
    webhook_sink,
)
from tests.support.services import TEST_FEEDBACK_TOKEN

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

# Short intervals so the whole chain (scrape, rules, exporter refreshes) turns over in seconds.
SERVICE_OVERRIDES = {
    "MLSTACK__API__RELOAD_INTERVAL_S": "1",
    "MLSTACK__EXPORTER__REFRESH_INTERVAL_S": "1",
    "MLSTACK__EXPORTER__DRIFT_INTERVAL_S": "2",
    "MLSTACK__EXPORTER__DRIFT_MIN_ROWS": "30",
}
BATCH_SIZES = (1, 3, 10, 25)
FEEDBACK_COUNT = 40
DRIFT_FACTOR = 1.8


def _service_env(config: Config, tracking_uri: str) -> dict[str, str]:
    """The parent's environment without a developer's MLSTACK settings, plus this stack's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLSTACK")}
    env.update(SERVICE_OVERRIDES)
    env.update(
        {
            "MLFLOW_TRACKING_URI": tracking_uri,
            "MLSTACK__PREDICTION_STORE__URL": config.prediction_store_url,
            "MLSTACK__SERVICES__STATE_DIR": str(config.state_dir),
            "MLSTACK__MLFLOW__TRACKING_URI": tracking_uri,
            FEEDBACK_TOKEN_ENV: TEST_FEEDBACK_TOKEN,
        }
    )
    return env


def _start_stack(stack: ExitStack, tmp: Path) -> tuple[Config, dict[str, ServiceProcess]]:
    """MLflow (with /metrics), a trained champion, a pipeline record, the predictor and the exporter."""
    ports = {name: free_port() for name in ("mlflow", "api", "exporter")}
    mlflow_url = f"http://127.0.0.1:{ports['mlflow']}"
    services: dict[str, ServiceProcess] = {}
    services["mlflow"] = stack.enter_context(
        run_service(
            "mlflow",
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(ports["mlflow"]),
                "--backend-store-uri",
                f"sqlite:///{tmp / 'mlflow.db'}",
                "--artifacts-destination",
                str(tmp / "artifacts"),
                "--serve-artifacts",
                "--workers",
                "1",
                "--expose-prometheus",
                str(tmp / "mlflow-metrics"),
            ],
            mlflow_url,
            "/health",
            tmp / "mlflow.log",
            timeout=180,
        )
    )
    store = {"prediction_store.url": f"sqlite:///{tmp / 'pred.db'}"}
    config = isolated_config(mlflow_url, tmp / "state", None, **store)
    state = run_training(config)
    assert state.promoted, state.results
    # The real pipeline's record of a run, so the exporter has a "last pipeline run" to show.
    Pipeline(config, Options(), NoServicesRuntime()).record_pipeline_run("success")

    env = _service_env(config, mlflow_url)
    services["api"] = stack.enter_context(
        run_service(
            "api",
            api_command(ports["api"]),
            f"http://127.0.0.1:{ports['api']}",
            "/readyz",
            tmp / "api.log",
            env=env,
            timeout=180,
        )
    )
    services["exporter"] = stack.enter_context(
        run_service(
            "exporter",
            exporter_command(ports["exporter"]),
            f"http://127.0.0.1:{ports['exporter']}",
            "/healthz",
            tmp / "exporter.log",
            env=env,
            timeout=180,
        )
    )
    return config, services


def _send_traffic(config: Config, api_url: str) -> int:
    """Drifted predictions in several batch sizes, rejected requests, and feedback; returns instances sent.

    Every feature is scaled by DRIFT_FACTOR, so the real exporter's Evidently check finds most features
    drifted against the champion's reference and DataDriftDetected fires at the default threshold.
    """
    dataset = load_base_dataset(config.data)
    rows = (dataset.features * DRIFT_FACTOR).to_dict(orient="records")
    labels = dataset.target.astype(int).tolist()
    sent, ids = 0, []
    session = requests.Session()
    for size in BATCH_SIZES * 3:  # bounded: 117 instances in 12 requests
        start = sent % len(rows)
        batch = rows[start : start + size]
        response = session.post(f"{api_url}/predict", json={"instances": batch}, timeout=30)
        assert response.status_code == 200, response.text
        ids += [(p["id"], labels[start + i]) for i, p in enumerate(response.json()["predictions"])]
        sent += len(batch)
    # Two rejected requests a few scrapes apart: rate() ignores a series' first sample, so a single
    # 4xx would create the series at 1 and never show as an increase.
    for pause in (2.5, 0):
        bad = session.post(f"{api_url}/predict", json={"instances": [{"nope": 1}]}, timeout=30)
        assert bad.status_code == 422
        time.sleep(pause)
    for prediction_id, label in ids[:FEEDBACK_COUNT]:
        response = session.post(
            f"{api_url}/feedback",
            json={"prediction_id": prediction_id, "true_label": label},
            headers={"Authorization": f"Bearer {TEST_FEEDBACK_TOKEN}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
    return sent


def _empty(api: PrometheusAPI, queries: list[PanelQuery]) -> list[str]:
    """The queries (by panel) that return no series right now."""
    return [q.where for q in queries if not api.query(q.resolved())]


@dataclass
class LiveStack:
    """Prometheus and Alertmanager over the real MLflow, predictor and exporter, after traffic."""

    prometheus: PrometheusAPI
    services: dict[str, ServiceProcess]
    recording_rules: Path
    sink: WebhookSink
    token: str


@pytest.fixture(scope="module")
def live_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    tmp = tmp_path_factory.mktemp("live-monitoring")
    token = secrets.token_urlsafe(24)
    with ExitStack() as stack:
        config, services = _start_stack(stack, tmp)
        sink = stack.enter_context(webhook_sink())
        prom_port, am_port = free_port(), free_port()
        # Scrape and evaluate every second; drift must hold 3 s. Every other threshold is mlstack.yaml's.
        monitoring = config.monitoring.model_copy(update={"scrape_interval_s": 1, "drift_for_minutes": 0.05})
        rendered = render_monitoring(
            config.model_copy(update={"monitoring": monitoring}),
            "local",
            tmp / "monitoring",
            targets={
                **{name: svc.url.removeprefix("http://") for name, svc in services.items()},
                "prometheus": f"127.0.0.1:{prom_port}",
                "alertmanager": f"127.0.0.1:{am_port}",
            },
            webhook_url=f"{sink.url}/alertmanager",
            webhook_token=token,
        )
        stack.enter_context(run_alertmanager(rendered.alertmanager_config, tmp / "am", am_port))
        prom = stack.enter_context(run_prometheus(rendered.prometheus_config, tmp / "prom", prom_port))
        api = PrometheusAPI(prom.url)
        # Traffic only once Prometheus has scraped the predictor: counters must be seen rising.
        api.wait_for_series('up{service="api"} == 1', timeout=60)
        _send_traffic(config, services["api"].url)
        yield LiveStack(api, services, rendered.recording_rules, sink, token)


def test_every_panel_query_and_recording_rule_returns_series(live_stack: LiveStack) -> None:
    api, services = live_stack.prometheus, live_stack.services
    dashboards = load_dashboards()
    queries = panel_queries(dashboards)
    recorded = [
        PanelQuery("recording rules", rule["record"], "record", rule["record"])
        for group in yaml.safe_load(live_stack.recording_rules.read_text())["groups"]
        for rule in group["rules"]
    ]
    assert len(queries) >= 30 and len(recorded) >= 10

    empty: list[str] = []

    def all_have_series() -> bool:
        empty[:] = _empty(api, queries + recorded)
        return not empty

    try:
        wait_until(all_have_series, timeout=120, interval=2, what="every panel query to return data")
    except TimeoutError:
        logs = {name: svc.log_tail(1500) for name, svc in services.items()}
        pytest.fail(f"queries with no series after 120 s: {empty}\nservice logs: {logs}")

    # Annotation queries only return data around a promotion; they must still be valid PromQL.
    for annotation in annotation_queries(dashboards):
        api.query(annotation.resolved())

    health = api.targets_up()
    assert health == dict.fromkeys(("api", "exporter", "mlflow", "alertmanager", "prometheus"), "up")
    bad_rules = [
        (rule["name"], rule.get("lastError"))
        for group in api.rule_groups()
        for rule in group["rules"]
        if rule["health"] == "err"
    ]
    assert not bad_rules

    # Values, not just presence: what the traffic and feedback must have produced.
    champion = api.query("max(mlops_champion_version)")
    served = api.query("mlops_model_info")
    assert served[0]["metric"]["version"] == champion[0]["value"][1]
    api.wait_for_series(f"max(mlops_live_labelled_count) == {FEEDBACK_COUNT}", timeout=30)
    # LiveAccuracyBelowFloor joins the exporter's reading to the served model on (model, version).
    assert api.query("mlops_live_accuracy and on (model, version) mlops_model_info")
    api.wait_for_series(f"max_over_time({CLIENT_ERROR_RATIO}[5m]) > 0", timeout=10)
    api.wait_for_series(f"max_over_time({VERSION_REQUEST_RATE}[5m]) > 0", timeout=10)


def test_real_drift_reaches_the_retrain_webhook(live_stack: LiveStack) -> None:
    """The real exporter's drift reading fires DataDriftDetected; Alertmanager posts it with the token."""
    api = live_stack.prometheus
    share = api.wait_for_series("mlops_drift_share_drifted_features", timeout=120)
    threshold = load_config(environ={}).monitoring.drift_share_threshold
    assert float(share[0]["value"][1]) >= threshold, f"traffic scaled by {DRIFT_FACTOR} should drift"
    api.wait_for_series('ALERTS{alertname="DataDriftDetected", alertstate="firing"}', timeout=60)
    delivery = live_stack.sink.wait(lambda d: d.payload.get("status") == "firing", timeout=90)
    assert delivery.headers.get("Authorization") == f"Bearer {live_stack.token}"
    (alert,) = delivery.payload["alerts"]
    assert alert["labels"]["alertname"] == "DataDriftDetected"
    assert alert["labels"]["ct_trigger"] == "drift"
    assert alert["labels"]["service"] == "exporter"
    # Nothing else was sent to the retrain receiver.
    assert all(a["labels"].get("ct_trigger") for d in live_stack.sink.deliveries for a in d.payload["alerts"])
