"""Schemathesis against the exporter and the CT trigger: no 5xx, responses as documented.

Neither serves an OpenAPI document (Flask, stdlib http.server), so their contracts are written
down here, from docs/exporter.md and mlstack/trigger_server.py (constraining only what the trigger
checks; fields it ignores stay free), and both real servers are fuzzed over loopback HTTP.
The predictor's own document is fuzzed by tests/integration/api/test_api_fuzz.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from mlstack_exporter.app import create_app, exporter_of
from schemathesis import checks
from werkzeug.serving import make_server

from mlstack.config import load_config
from mlstack.contract import ALERT_TRIGGERS
from mlstack.ct import AuditLog, RunOutcome, TriggerController
from mlstack.trigger_server import build_server, serve_in_thread
from tests.support.pipeline import TrainedRegistry

pytestmark = pytest.mark.integration
MAX_EXAMPLES = 60
TOKEN = "fuzzing-webhook-token-0123456789"

ERROR = {"type": "object"}
JSON_OBJECT = {"application/json": {"schema": {"type": "object"}}}
HTML = {"text/html": {"schema": {"type": "string"}}}

EXPORTER_OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "mlstack exporter", "version": "1"},
    "paths": {
        "/healthz": {
            "get": {
                "responses": {
                    "200": {
                        "description": "alive",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["status", "sources"],
                                    "properties": {"status": {"enum": ["ok"]}, "sources": {"type": "object"}},
                                }
                            }
                        },
                    }
                }
            }
        },
        "/summary.json": {"get": {"responses": {"200": {"description": "summary", "content": JSON_OBJECT}}}},
        "/": {"get": {"responses": {"200": {"description": "summary page", "content": HTML}}}},
        "/reports/drift": {
            "get": {
                "responses": {
                    "200": {"description": "Evidently report", "content": HTML},
                    "404": {"description": "no report yet", "content": HTML},
                }
            }
        },
        "/metrics": {
            "get": {
                "responses": {
                    "200": {
                        "description": "Prometheus text",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                }
            }
        },
    },
}

LABELS = {"type": "object", "nullable": True, "additionalProperties": {"type": "string"}}
TRIGGER_OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "mlstack CT trigger", "version": "1"},
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Alert": {
                "type": "object",
                "properties": {
                    "labels": {
                        "type": "object",
                        "nullable": True,
                        "properties": {"ct_trigger": {"enum": sorted(ALERT_TRIGGERS)}},
                        "additionalProperties": {"type": "string"},
                    },
                },
            },
            "Notification": {
                "type": "object",
                "required": ["status", "alerts"],
                "properties": {
                    "version": {"enum": ["4"]},
                    "status": {"enum": ["firing", "resolved"]},
                    "alerts": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/Alert"},
                    },
                    "commonLabels": LABELS,
                },
            },
            "Decision": {
                "type": "object",
                "required": ["decision", "reason"],
                "properties": {"decision": {"type": "string"}, "reason": {"type": "string"}},
            },
        },
    },
    "paths": {
        "/healthz": {"get": {"responses": {"200": {"description": "alive", "content": JSON_OBJECT}}}},
        "/alertmanager": {
            "post": {
                "security": [{"bearer": []}],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Notification"}}
                    },
                },
                "responses": {
                    **{
                        code: {
                            "description": meaning,
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/Decision"}}
                            },
                        }
                        for code, meaning in (
                            ("200", "skipped or cooled down"),
                            ("202", "retrain started or coalesced"),
                            ("400", "malformed notification"),
                            ("401", "missing or wrong bearer token"),
                            ("411", "no Content-Length"),
                            ("413", "body too large"),
                        )
                    },
                    "503": {"description": "trigger error (Alertmanager retries)", "content": JSON_OBJECT},
                },
            }
        },
    },
}


def fuzz_settings() -> Any:
    return settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def exporter_url(
    trained_registry: TrainedRegistry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The real exporter app (one refresh done, so every page has data) on a loopback WSGI server."""
    tmp = tmp_path_factory.mktemp("exporter-fuzz")
    config = trained_registry.config(
        **{"prediction_store.url": f"sqlite:///{tmp / 'predictions.db'}", "services.state_dir": str(tmp)}
    )
    app = create_app(config, start_background=False)
    exporter_of(app).refresh_all()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def instant_run(trigger: str) -> RunOutcome:
    """Stands in for the pipeline subprocess (the trigger's HTTP side is what is fuzzed)."""
    return RunOutcome("success", 0, 0.01, pipeline_id="fuzz", reason=f"{trigger}: ok", trained=True)


@pytest.fixture(scope="module")
def trigger_audit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, AuditLog]]:
    """The real trigger server on a free loopback port, and its audit log."""
    tmp = tmp_path_factory.mktemp("trigger-fuzz")
    config = load_config(environ={}, overrides={"services.state_dir": str(tmp), "ct.cooldown_s": 60})
    audit = AuditLog.for_config(config)
    controller = TriggerController(config, audit, instant_run, last_retrain=lambda: None)
    server = build_server(config, TOKEN, port=0, controller=controller)
    thread = serve_in_thread(server)
    try:
        yield server.url, audit
    finally:
        controller.wait_idle(10)
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def trigger_url(trigger_audit: tuple[str, AuditLog]) -> str:
    return trigger_audit[0]


# Static documents, so the plain (not lazy) parametrization works; the servers' URLs come from fixtures.
exporter_openapi = schemathesis.openapi.from_dict(EXPORTER_OPENAPI)
trigger_openapi = schemathesis.openapi.from_dict(TRIGGER_OPENAPI)


@exporter_openapi.parametrize()
@fuzz_settings()
def test_exporter_conforms_and_never_fails(case: schemathesis.Case, exporter_url: str) -> None:
    case.call_and_validate(base_url=exporter_url, timeout=30)


@trigger_openapi.parametrize()
@fuzz_settings()
def test_trigger_conforms_and_never_fails(case: schemathesis.Case, trigger_url: str) -> None:
    # With the right token the fuzzer reaches the payload checks; ignored_auth still checks the 401s.
    # The document states the payload rules only roughly (the trigger ignores fields it does not use),
    # so whether a given body is accepted is not judged here; status, content and no 5xx are. Method
    # semantics are checked by test_other_methods_get_405_not_a_5xx: the trigger answers 404 to
    # POST /healthz and sends one `Allow: GET, POST` for both paths, which the strict checks flag.
    case.call_and_validate(
        base_url=trigger_url,
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=30,
        excluded_checks=[
            checks.negative_data_rejection,
            checks.positive_data_acceptance,
            checks.unsupported_method,
            checks.allow_header_conformance,
        ],
    )


def test_malformed_webhook_bodies_are_rejected_and_audited(trigger_audit: tuple[str, AuditLog]) -> None:
    """Each malformed body gets a 400 and an audit entry with its status and reason (never silent)."""
    url, audit = trigger_audit
    malformed = [
        b"",
        b"{",
        b"[]",
        b"\xff\xfe",
        b'{"version": "3", "status": "firing", "alerts": []}',
        b'{"version": "4", "status": "pending", "alerts": []}',
        b'{"version": "4", "status": "firing", "alerts": {}}',
        b'{"version": "4", "status": "firing", "alerts": [{"labels": {"ct_trigger": "everything"}}]}',
        b'{"version": "4", "status": "firing", "alerts": [{"labels": {"ct_trigger": 1}}]}',
        b'{"version": "4", "status": "firing", "alerts": [], "commonLabels": []}',
    ]
    before = len(audit.entries())
    for body in malformed:
        response = requests.post(
            f"{url}/alertmanager", data=body, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
        )
        assert response.status_code == 400, (body, response.status_code, response.text)
        assert response.json()["decision"] == "rejected"
    entries = audit.entries()[before:]
    assert len(entries) == len(malformed)
    assert all(e["decision"] == "rejected" and e["status"] == 400 and e["reason"] for e in entries)


def test_other_methods_get_405_not_a_5xx(trigger_url: str) -> None:
    for method in ("PUT", "DELETE", "PATCH", "TRACE", "OPTIONS"):
        for path in ("/alertmanager", "/healthz"):
            response = requests.request(method, f"{trigger_url}{path}", timeout=10)
            assert response.status_code == 405, (method, path, response.status_code)
