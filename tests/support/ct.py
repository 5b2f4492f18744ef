"""Continuous-training test helpers: Alertmanager webhook bodies and a stand-in pipeline runner."""

from __future__ import annotations

import threading
from typing import Any

from mlstack.ct import RunOutcome


def notification(trigger: str | None = "drift", status: str = "firing", **extra: Any) -> dict[str, Any]:
    """An Alertmanager webhook body (version 4) as the CT route sends it."""
    alertname = "LiveAccuracyBelowFloor" if trigger == "accuracy" else "DataDriftDetected"
    labels = {"alertname": alertname, "severity": "warning", "service": "exporter"}
    if trigger:
        labels["ct_trigger"] = trigger
    return {
        "version": "4",
        "groupKey": f'{{}}/{{ct_trigger=~".+"}}:{{ct_trigger="{trigger}"}}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "retrain-webhook",
        "groupLabels": {"ct_trigger": trigger} if trigger else {},
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:9093",
        "alerts": [
            {
                "status": status,
                "labels": labels,
                "annotations": {"summary": "retrain requested"},
                "startsAt": "2026-11-23T02:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://127.0.0.1:9090/graph",
                "fingerprint": "0123456789abcdef",
            }
        ],
        **extra,
    }


class GatedRunner:
    """Stands in for the pipeline subprocess: each call blocks until `release()`; records triggers."""

    def __init__(self, outcome: RunOutcome | None = None) -> None:
        self.calls: list[str] = []
        self.started = threading.Semaphore(0)
        self._gate = threading.Semaphore(0)
        self.outcome = outcome or RunOutcome("success", 0, 1.0, pipeline_id="p1", reason="ok", trained=True)

    def __call__(self, trigger: str) -> RunOutcome:
        self.calls.append(trigger)
        self.started.release()
        assert self._gate.acquire(timeout=30), "test never released the runner"
        return self.outcome

    def release(self) -> None:
        self._gate.release()
