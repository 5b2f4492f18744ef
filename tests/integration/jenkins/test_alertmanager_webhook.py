"""A real Alertmanager's notifications, exactly as sent, start the Jenkins builds they should.

The project's rendered alertmanager.yml runs in the real Alertmanager; alerts are posted to its API
(labels as the alert rules set them), and every notification it sends to the retrain webhook (body
and headers, Bearer token included) is handed to the Jenkinsfile's Generic Webhook Trigger in the
harness. Jenkins itself is the harness (no controller can run here); Alertmanager is real.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import pytest
import requests

from mlstack import contract
from mlstack.config import load_config
from mlstack.monitoring.render import render_monitoring
from tests.support.jenkins import casc
from tests.support.jenkins.harness import Scenario, run_jenkinsfile
from tests.support.net import free_port
from tests.support.prom import Delivery, run_alertmanager, webhook_sink

pytestmark = pytest.mark.integration


def _alert(name: str, **labels: str) -> dict[str, object]:
    return {
        "labels": {"alertname": name, "service": "exporter", "severity": "warning", **labels},
        "annotations": {"summary": f"{name} (test)"},
        "startsAt": datetime.now(UTC).isoformat(),
    }


def _for_trigger(trigger: str, delivery: Delivery) -> bool:
    return bool(delivery.payload.get("commonLabels", {}).get(contract.CT_LABEL) == trigger)


def test_alertmanager_notifications_trigger_the_matching_builds(tmp_path: Path) -> None:
    token = secrets.token_urlsafe(24)
    am_port = free_port()
    with webhook_sink() as sink:
        rendered = render_monitoring(
            load_config(environ={}),
            "local",
            tmp_path / "render",
            targets={
                "exporter": f"127.0.0.1:{free_port()}",
                "prometheus": f"127.0.0.1:{free_port()}",
                "alertmanager": f"127.0.0.1:{am_port}",
                "api": f"127.0.0.1:{free_port()}",
                "mlflow": f"127.0.0.1:{free_port()}",
            },
            webhook_url=f"{sink.url}/generic-webhook-trigger/invoke",
            webhook_token=token,
        )
        with run_alertmanager(rendered.alertmanager_config, tmp_path / "am", am_port) as am:
            alerts = [
                _alert("DataDriftDetected", **{contract.CT_LABEL: contract.TRIGGER_DRIFT}),
                _alert("LiveAccuracyBelowFloor", **{contract.CT_LABEL: contract.TRIGGER_ACCURACY}),
                _alert("PredictorDown"),  # no CT label: the default receiver, never Jenkins
            ]
            response = requests.post(f"{am.url}/api/v2/alerts", json=alerts, timeout=10)
            assert response.status_code == 200, response.text
            # The CT route waits group_wait (30 s), then sends one notification per ct_trigger group.
            for trigger in contract.ALERT_TRIGGERS:
                sink.wait(partial(_for_trigger, trigger), 90)
        deliveries = list(sink.deliveries)

    assert all(d.path == "/generic-webhook-trigger/invoke" for d in deliveries)
    scenarios = [
        Scenario(f"delivery {i}", trigger={"type": "webhook", "headers": d.headers, "body": d.payload})
        for i, d in enumerate(deliveries)
    ]
    forged = dict(deliveries[0].headers, Authorization="Bearer not-the-token")
    scenarios.append(
        Scenario("forged", trigger={"type": "webhook", "headers": forged, "body": deliveries[0].payload})
    )
    credentials = casc.string_credentials({contract.WEBHOOK_TOKEN_ENV: token})
    builds = run_jenkinsfile(scenarios, credentials=credentials).builds

    started = sorted(b.params[contract.JENKINS_TRIGGER_PARAMETER] for b in builds.values() if b.triggered)
    assert started == sorted(contract.ALERT_TRIGGERS), [(b.name, b.reason) for b in builds.values()]
    for build in builds.values():
        if build.triggered:
            reason = build.params[contract.JENKINS_TRIGGER_PARAMETER]
            assert build.result == "SUCCESS", build.summary()
            assert all(f"--trigger={reason}" in c for c in build.commands if " stage " in c), build.summary()
    assert not builds["forged"].triggered and "token" in builds["forged"].reason
