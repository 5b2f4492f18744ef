"""A drift alert travels through a real Prometheus and a real Alertmanager to the retrain webhook."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from mlstack.config import load_config
from mlstack.monitoring.render import render_monitoring
from tests.support.net import free_port
from tests.support.prom import PrometheusAPI, run_alertmanager, run_prometheus, static_metrics, webhook_sink

pytestmark = pytest.mark.integration


def _drift_metrics(share: float) -> str:
    return (
        "# TYPE mlops_drift_share_drifted_features gauge\n"
        f"mlops_drift_share_drifted_features {share}\n"
        "# TYPE mlops_drift_dataset_drift gauge\n"
        f"mlops_drift_dataset_drift {int(share >= 0.2)}\n"
        "# TYPE mlops_drift_insufficient_data gauge\n"
        "mlops_drift_insufficient_data 0\n"
    )


def test_drift_alert_reaches_the_retrain_webhook_with_the_token(tmp_path: Path) -> None:
    """Rendered config (drift threshold lowered to 0.2, held 3 s), real binaries, a webhook sink.

    The drift gauges come from a tiny static endpoint in this test, not the real exporter, so the
    test can hold the share below the threshold (no alert) and then move it across on demand, in
    seconds. The same path fed by the real exporter's Evidently reading is
    tests/integration/monitoring/test_monitoring_live.py::test_real_drift_reaches_the_retrain_webhook.
    """
    token = secrets.token_urlsafe(24)
    prom_port, am_port = free_port(), free_port()
    cfg = load_config(
        environ={},
        overrides={
            "monitoring.scrape_interval_s": 1,
            "monitoring.drift_share_threshold": 0.2,
            "monitoring.drift_for_minutes": 0.05,
        },
    )
    with static_metrics(_drift_metrics(0.1)) as exporter, webhook_sink() as sink:
        rendered = render_monitoring(
            cfg,
            "local",
            tmp_path / "render",
            targets={
                "exporter": exporter.url.removeprefix("http://"),
                "prometheus": f"127.0.0.1:{prom_port}",
                "alertmanager": f"127.0.0.1:{am_port}",
                # Nothing listens here: api and mlflow are down, which must not reach the webhook.
                "api": f"127.0.0.1:{free_port()}",
                "mlflow": f"127.0.0.1:{free_port()}",
            },
            webhook_url=f"{sink.url}/alertmanager",
            webhook_token=token,
        )
        with (
            run_alertmanager(rendered.alertmanager_config, tmp_path / "am", am_port),
            run_prometheus(rendered.prometheus_config, tmp_path / "prom", prom_port) as prom,
        ):
            api = PrometheusAPI(prom.url)
            assert api.wait_for_series('mlops_drift_share_drifted_features{service="exporter"}', 30)

            # Below the threshold: several evaluations pass and the alert is not even pending.
            api.wait_for_series("count_over_time(mlops_drift_share_drifted_features[1m]) >= 5", 30)
            assert not [a for a in api.alerts() if a["labels"]["alertname"] == "DataDriftDetected"]

            exporter.set(_drift_metrics(0.3))
            firing = api.wait_for_series('ALERTS{alertname="DataDriftDetected", alertstate="firing"}', 30)
            assert firing[0]["metric"]["ct_trigger"] == "drift"

            # Alertmanager's CT route waits group_wait (30 s) before the first notification.
            delivery = sink.wait(lambda d: d.payload.get("status") == "firing", timeout=75)

    assert delivery.path == "/alertmanager"
    assert delivery.headers.get("Authorization") == f"Bearer {token}"
    payload = delivery.payload
    assert payload["receiver"] == "retrain-webhook"
    assert payload["commonLabels"]["ct_trigger"] == "drift"
    (alert,) = payload["alerts"]
    assert alert["status"] == "firing"
    assert alert["labels"]["alertname"] == "DataDriftDetected"
    assert alert["labels"]["ct_trigger"] == "drift"
    assert alert["labels"]["service"] == "exporter"
    assert "monitoring.drift_share_threshold = 0.2" in alert["annotations"]["description"]
    # Only CT alerts reach the webhook: TargetDown for api/mlflow went to the default receiver.
    assert all(a["labels"].get("ct_trigger") for d in sink.deliveries for a in d.payload["alerts"])
