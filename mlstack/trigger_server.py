"""The local CT trigger: an Alertmanager webhook receiver that starts retrains through `mlstack.ct`.

`POST /alertmanager` with `Authorization: Bearer $MLSTACK_WEBHOOK_TOKEN` and Alertmanager's webhook
JSON (version 4). Answers: 202 ran/coalesced, 200 cooled-down/skipped, 400 malformed, 401 bad token,
404 wrong path, 405 other methods, 411/413 body length; never a 5xx for bad input. Every POST is audited.
`GET /healthz` reports liveness and whether a retrain runs.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from mlstack.config import Config
from mlstack.contract import ALERT_TRIGGERS, CT_LABEL, LOOPBACK, WEBHOOK_TOKEN_ENV, most_urgent
from mlstack.ct import AuditLog, PipelineRunner, TriggerController, bearer_token_ok

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/alertmanager"
HEALTH_PATH = "/healthz"
MAX_BODY_BYTES = 1_048_576
WEBHOOK_VERSION = "4"


class PayloadError(ValueError):
    """The body is not an Alertmanager webhook notification we can act on (a 400)."""


@dataclass(frozen=True)
class Notification:
    """What the trigger needs from one Alertmanager notification."""

    status: str
    trigger: str | None  # None: nothing to retrain for (no ct_trigger label, or resolved)
    alerts: tuple[str, ...]
    group_key: str


def _labels(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise PayloadError(f"{where} must be an object of string labels")
    return value


def parse_notification(body: bytes) -> Notification:
    """Parse and check an Alertmanager webhook body (JSON, version 4).

    The trigger is taken from the firing alerts' `ct_trigger` labels (falling back to
    `commonLabels`); if alerts of both kinds are in one notification, `accuracy` wins.

    Raises:
        PayloadError: not JSON, wrong shape, wrong version or an unknown `ct_trigger` value.
    """
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise PayloadError(f"body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise PayloadError("body must be a JSON object (Alertmanager webhook notification)")
    version = payload.get("version", WEBHOOK_VERSION)
    if version != WEBHOOK_VERSION:
        raise PayloadError(f"unsupported webhook version {version!r}; expected {WEBHOOK_VERSION!r}")
    status = payload.get("status")
    if status not in ("firing", "resolved"):
        raise PayloadError(f"'status' must be 'firing' or 'resolved', got {status!r}")
    alerts = payload.get("alerts")
    if not isinstance(alerts, list):
        raise PayloadError("'alerts' must be a list")
    common = _labels(payload.get("commonLabels"), "'commonLabels'")
    names: list[str] = []
    wanted: set[str] = set()
    for index, alert in enumerate(alerts):
        if not isinstance(alert, dict):
            raise PayloadError(f"alerts[{index}] must be an object")
        labels = _labels(alert.get("labels"), f"alerts[{index}].labels")
        names.append(labels.get("alertname", "?"))
        if alert.get("status", status) == "firing" and CT_LABEL in labels:
            wanted.add(labels[CT_LABEL])
    if not wanted and status == "firing" and CT_LABEL in common:
        wanted.add(common[CT_LABEL])
    unknown = sorted(wanted - set(ALERT_TRIGGERS))
    if unknown:
        raise PayloadError(f"unknown {CT_LABEL} value(s) {unknown}; expected one of {list(ALERT_TRIGGERS)}")
    trigger = most_urgent(wanted)
    group_key = payload.get("groupKey")
    return Notification(status, trigger, tuple(names), group_key if isinstance(group_key, str) else "")


class TriggerServer(ThreadingHTTPServer):
    """A threaded HTTP server bound to loopback, holding the controller and the token."""

    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], controller: TriggerController, audit: AuditLog, token: str
    ) -> None:
        if not token:
            raise ValueError(f"the trigger needs a webhook token ({WEBHOOK_TOKEN_ENV})")
        self.controller = controller
        self.audit = audit
        self.token = token
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


class _Handler(BaseHTTPRequestHandler):
    server: TriggerServer
    server_version = "mlstack-trigger"
    sys_version = ""
    timeout = 30  # seconds a client may take to send its request (a stalled client frees its thread)

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _reject(self, status: int, reason: str, **fields: Any) -> None:
        self.server.audit.record("rejected", reason, status=status, remote=self.client_address[0], **fields)
        self._send(status, {"decision": "rejected", "reason": reason})

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The stdlib answers 501 to methods without a `do_*` and 505 to odd HTTP versions: both are
        the client's mistake here, so they become 405 (with `Allow`) and 400; never a 5xx."""
        if code == HTTPStatus.NOT_IMPLEMENTED:
            self.close_connection = True
            data = json.dumps({"error": f"method {self.command} not allowed; GET or POST"}).encode()
            self.send_response(HTTPStatus.METHOD_NOT_ALLOWED)
            self.send_header("Allow", "GET, POST")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            return
        if code == HTTPStatus.HTTP_VERSION_NOT_SUPPORTED:
            code = HTTPStatus.BAD_REQUEST
        super().send_error(code, message, explain)

    def do_GET(self) -> None:
        if self.path.split("?")[0] != HEALTH_PATH:
            self._send(404, {"error": f"not found; GET {HEALTH_PATH} or POST {WEBHOOK_PATH}"})
            return
        self._send(200, {"status": "ok", **self.server.controller.as_dict()})

    def do_POST(self) -> None:
        try:
            self._post()
        except Exception as exc:  # a bug or a full disk: retryable for Alertmanager, never a 500
            log.exception("trigger request failed")
            self._send(503, {"error": f"trigger error: {exc.__class__.__name__}; see the trigger log"})

    def _post(self) -> None:
        if self.path.split("?")[0] != WEBHOOK_PATH:
            self._reject(404, f"unknown path {self.path[:200]!r}; POST {WEBHOOK_PATH}")
            return
        if not bearer_token_ok(self.headers.get("Authorization"), self.server.token):
            missing = not self.headers.get("Authorization")
            self._reject(401, "missing bearer token" if missing else "wrong bearer token")
            return
        raw_length = self.headers.get("Content-Length")
        if raw_length is None:
            self._reject(411, "Content-Length required")
            return
        try:
            length = int(raw_length)
        except ValueError:
            self._reject(400, f"bad Content-Length {raw_length[:40]!r}")
            return
        if length < 0 or length > MAX_BODY_BYTES:
            self._reject(413, f"body of {length} bytes; at most {MAX_BODY_BYTES}")
            return
        try:
            notification = parse_notification(self.rfile.read(length))
        except PayloadError as exc:
            self._reject(400, str(exc))
            return
        detail = {"alerts": list(notification.alerts), "remote": self.client_address[0]}
        if notification.trigger is None:
            reason = (
                "resolved notification: nothing to retrain"
                if notification.status == "resolved"
                else f"no firing alert carries a {CT_LABEL} label"
            )
            self.server.audit.record("skipped", reason, source="alertmanager", **detail)
            self._send(200, {"decision": "skipped", "reason": reason})
            return
        result = self.server.controller.submit(notification.trigger, "alertmanager", **detail)
        self._send(
            result.status,
            {
                "decision": result.decision,
                "reason": result.reason,
                "trigger": notification.trigger,
                **result.extra,
            },
        )


def build_server(
    config: Config,
    token: str,
    *,
    port: int | None = None,
    runtime: str = "local",
    controller: TriggerController | None = None,
) -> TriggerServer:
    """A trigger server on 127.0.0.1 (`services.trigger_port` unless `port`), not yet serving.

    Args:
        config: the effective config; the pipelines it starts get the same (via ct/config.yaml).
        token: the bearer token Alertmanager sends.
        port: 0 picks a free port (tests).
        runtime: the runtime of the pipelines it starts.
        controller: a controller to use instead of one running real pipelines (tests).
    """
    audit = AuditLog.for_config(config)
    if controller is None:
        controller = TriggerController(config, audit, PipelineRunner(config, runtime))
    bind_port = config.services.trigger_port if port is None else port
    return TriggerServer((LOOPBACK, bind_port), controller, controller.audit, token)


def serve_in_thread(server: TriggerServer) -> threading.Thread:
    """Serve in a daemon thread (tests, embedding); stop with `server.shutdown()`."""
    thread = threading.Thread(target=server.serve_forever, name="ct-trigger", daemon=True)
    thread.start()
    return thread
