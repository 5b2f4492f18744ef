"""The trigger's HTTP side: token, payload checks, status codes and audit entries, over real HTTP.

The server is the real `TriggerServer` on a free loopback port; its controller runs a stand-in
pipeline (tests/test_ct_policy.GatedRunner) so a "run" lasts exactly as long as the test wants.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from mlstack.ct import AuditLog, TriggerController, bearer_token_ok
from mlstack.trigger_server import (
    MAX_BODY_BYTES,
    PayloadError,
    TriggerServer,
    build_server,
    parse_notification,
    serve_in_thread,
)
from tests.support.ct import GatedRunner, notification
from tests.unit.ct.test_ct_policy import _config

TOKEN = "s3cret-token-for-tests-0123456789"


class Trigger:
    """A running trigger server and what the test needs to drive and inspect it."""

    def __init__(self, server: TriggerServer, runner: GatedRunner, audit: AuditLog) -> None:
        self.server = server
        self.runner = runner
        self.audit = audit
        self.url = f"{server.url}/alertmanager"

    def post(self, body: Any, token: str | None = TOKEN, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return requests.post(self.url, data=data, headers=headers, timeout=10, **kwargs)

    def decisions(self) -> list[str]:
        return [e["decision"] for e in self.audit.entries()]


@pytest.fixture
def trigger(tmp_path: Path) -> Iterator[Trigger]:
    cfg = _config(tmp_path)
    audit = AuditLog.for_config(cfg)
    runner = GatedRunner()
    controller = TriggerController(cfg, audit, runner, last_retrain=lambda: None)
    server = build_server(cfg, TOKEN, port=0, controller=controller)
    thread = serve_in_thread(server)
    try:
        yield Trigger(server, runner, audit)
    finally:
        for _ in range(5):  # let any run the test started finish
            runner.release()
        controller.wait_idle(10)
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_binds_loopback_only(trigger: Trigger) -> None:
    assert trigger.server.server_address[0] == "127.0.0.1"
    health = requests.get(f"{trigger.server.url}/healthz", timeout=5)
    assert health.status_code == 200 and health.json() == {
        "status": "ok", "running": None, "follow_up": None, "last_outcome": None,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing bearer token"),
        ("Bearer wrong-token", "wrong bearer token"),
        (f"Basic {TOKEN}", "wrong bearer token"),
        (f"Bearer {TOKEN}x", "wrong bearer token"),
        ("Bearer", "wrong bearer token"),
    ],
)
def test_missing_or_wrong_token_is_401_and_audited(trigger: Trigger, header: str | None, reason: str) -> None:
    headers = {"Authorization": header} if header is not None else {}
    response = requests.post(trigger.url, json=notification(), headers=headers, timeout=10)
    assert response.status_code == 401
    assert response.json() == {"decision": "rejected", "reason": reason}
    (entry,) = trigger.audit.entries()
    assert (entry["decision"], entry["status"], entry["reason"]) == ("rejected", 401, reason)
    assert entry["remote"] == "127.0.0.1"
    assert TOKEN not in trigger.audit.path.read_text()  # the audit never holds a token
    assert trigger.runner.calls == []


MALFORMED = {
    "not json": (b"{not json", "not valid JSON"),
    "not an object": (b"[1, 2]", "must be a JSON object"),
    "bad utf-8": (b"\xff\xfe", "not valid JSON"),
    "wrong version": (json.dumps(notification(version="3")).encode(), "unsupported webhook version"),
    "no status": (json.dumps({"version": "4", "alerts": []}).encode(), "'status' must be"),
    "alerts not a list": (json.dumps({**notification(), "alerts": {}}).encode(), "'alerts' must be a list"),
    "alert not an object": (json.dumps({**notification(), "alerts": ["x"]}).encode(), "alerts[0] must be"),
    "labels not strings": (
        json.dumps({**notification(), "alerts": [{"labels": {"ct_trigger": 1}}]}).encode(),
        "alerts[0].labels must be an object of string labels",
    ),
    "unknown ct_trigger": (json.dumps(notification("rebuild-everything")).encode(), "unknown ct_trigger"),
    "deep nesting": (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_payloads_are_400_and_audited(trigger: Trigger, case: str) -> None:
    body, message = MALFORMED[case]
    response = trigger.post(body)
    assert response.status_code == 400, response.text
    assert message in response.json()["reason"]
    (entry,) = trigger.audit.entries()
    assert entry["decision"] == "rejected" and entry["status"] == 400 and message in entry["reason"]
    assert trigger.runner.calls == []


def test_body_limits_wrong_paths_and_methods_never_500(trigger: Trigger) -> None:
    too_big = trigger.post(b"x" * (MAX_BODY_BYTES + 1))
    assert too_big.status_code == 413
    wrong_path = requests.post(
        f"{trigger.server.url}/other",
        json=notification(),
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )
    assert wrong_path.status_code == 404
    assert requests.get(f"{trigger.server.url}/alertmanager", timeout=10).status_code == 404
    for method in ("PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "HEAD", "BREW"):
        other = requests.request(method, trigger.url, data=b"{}", timeout=10)
        assert (other.status_code, other.headers.get("Allow")) == (405, "GET, POST"), method
    # No Content-Length at all (raw socket: clients always send one).
    host, port = trigger.server.server_address[:2]
    with socket.create_connection((str(host), int(port)), timeout=10) as raw:
        raw.sendall(
            f"POST /alertmanager HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode()
        )
        assert raw.recv(200).startswith(b"HTTP/1.0 411")
    with socket.create_connection((str(host), int(port)), timeout=10) as raw:
        raw.sendall(b"GET /healthz HTTP/3.0\r\nHost: x\r\n\r\n")  # answered HTTP/0.9-style: no status line
        assert b"Error code: 400" in raw.recv(2000)
    assert trigger.decisions() == ["rejected"] * 3
    assert [e["status"] for e in trigger.audit.entries()] == [413, 404, 411]


def test_resolved_or_unlabelled_notifications_are_skipped(trigger: Trigger) -> None:
    resolved = trigger.post(notification(status="resolved"))
    assert resolved.status_code == 200 and resolved.json()["decision"] == "skipped"
    unlabelled = trigger.post(notification(None))
    assert (
        unlabelled.status_code == 200
        and "no firing alert carries a ct_trigger" in unlabelled.json()["reason"]
    )
    assert trigger.decisions() == ["skipped", "skipped"] and trigger.runner.calls == []


def test_alert_runs_then_a_burst_is_coalesced(trigger: Trigger) -> None:
    first = trigger.post(notification())
    assert (
        first.status_code == 202 and first.json()["decision"] == "ran" and first.json()["trigger"] == "drift"
    )
    assert trigger.runner.started.acquire(timeout=10)
    burst = [trigger.post(notification()) for _ in range(3)]
    assert [r.status_code for r in burst] == [202] * 3
    assert [r.json()["decision"] for r in burst] == ["coalesced"] * 3
    health = requests.get(f"{trigger.server.url}/healthz", timeout=5).json()
    assert health["running"] == "drift" and health["follow_up"] == "drift"
    trigger.runner.release()
    assert trigger.server.controller.wait_idle(10)
    assert trigger.runner.calls == ["drift"]
    assert trigger.decisions() == ["ran", "coalesced", "coalesced", "coalesced", "ran", "cooled-down"]
    started = trigger.audit.entries()[0]
    assert started["alerts"] == ["DataDriftDetected"] and started["source"] == "alertmanager"


def test_parse_prefers_accuracy_and_falls_back_to_common_labels() -> None:
    mixed = notification()
    mixed["alerts"].append(
        {**mixed["alerts"][0], "labels": {"alertname": "LiveAccuracyBelowFloor", "ct_trigger": "accuracy"}}
    )
    parsed = parse_notification(json.dumps(mixed).encode())
    assert parsed.trigger == "accuracy" and parsed.alerts == ("DataDriftDetected", "LiveAccuracyBelowFloor")
    common_only = {**notification(), "alerts": []}
    assert parse_notification(json.dumps(common_only).encode()).trigger == "drift"
    resolved_alert = notification()
    resolved_alert["alerts"][0]["status"] = "resolved"
    resolved_alert["commonLabels"] = {}
    assert parse_notification(json.dumps(resolved_alert).encode()).trigger is None
    with pytest.raises(PayloadError):
        parse_notification(b'{"version": "4", "status": "firing", "alerts": [], "commonLabels": []}')


def test_token_comparison() -> None:
    assert bearer_token_ok(f"Bearer {TOKEN}", TOKEN)
    assert bearer_token_ok(f"bearer {TOKEN}", TOKEN)
    assert not bearer_token_ok(f"Bearer {TOKEN}", "")
    assert not bearer_token_ok(None, TOKEN)
    assert not bearer_token_ok("Bearer é", TOKEN)


def test_server_refuses_to_start_without_a_token(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="MLSTACK_WEBHOOK_TOKEN"):
        build_server(_config(tmp_path), "", port=0)
