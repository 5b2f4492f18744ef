"""Real Prometheus and Alertmanager processes for tests, plus a tiny metrics endpoint and webhook sink."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

from tests.support.binaries import require_binary
from tests.support.net import free_port, wait_until
from tests.support.process import ServiceProcess, run_service


@contextmanager
def run_prometheus(config_file: Path, data_dir: Path, port: int | None = None) -> Iterator[ServiceProcess]:
    """Start Prometheus on 127.0.0.1 with `config_file`; stop it on exit."""
    binary = require_binary("prometheus")
    port = port or free_port()
    argv = [
        binary,
        f"--config.file={config_file}",
        f"--storage.tsdb.path={data_dir / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=1h",
    ]
    with run_service(
        "prometheus", argv, f"http://127.0.0.1:{port}", "/-/ready", data_dir / "prometheus.log"
    ) as svc:
        yield svc


@contextmanager
def run_alertmanager(config_file: Path, data_dir: Path, port: int | None = None) -> Iterator[ServiceProcess]:
    """Start Alertmanager on 127.0.0.1 (clustering off, so it binds nothing else); stop it on exit."""
    binary = require_binary("prometheus-alertmanager", "alertmanager")
    port = port or free_port()
    argv = [
        binary,
        f"--config.file={config_file}",
        f"--storage.path={data_dir / 'am'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    with run_service(
        "alertmanager", argv, f"http://127.0.0.1:{port}", "/-/ready", data_dir / "alertmanager.log"
    ) as svc:
        yield svc


class PrometheusAPI:
    """The bits of the Prometheus HTTP API tests use."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; raises with Prometheus' error text on a bad expression."""
        response = requests.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        body = response.json()
        if body.get("status") != "success":
            raise ValueError(f"query {expr!r} failed: {body.get('errorType')}: {body.get('error')}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def targets_up(self) -> dict[str, str]:
        """service label -> target health (up/down/unknown)."""
        body = requests.get(f"{self.url}/api/v1/targets", timeout=10).json()
        return {t["labels"].get("service", "?"): t["health"] for t in body["data"]["activeTargets"]}

    def alerts(self) -> list[dict[str, Any]]:
        """Pending and firing alerts."""
        body = requests.get(f"{self.url}/api/v1/alerts", timeout=10).json()
        alerts: list[dict[str, Any]] = body["data"]["alerts"]
        return alerts

    def rule_groups(self) -> list[dict[str, Any]]:
        """Loaded rule groups, with each rule's health and last error."""
        body = requests.get(f"{self.url}/api/v1/rules", timeout=10).json()
        groups: list[dict[str, Any]] = body["data"]["groups"]
        return groups

    def wait_for_evaluations(self, rule_name: str, count: int, timeout: float = 60) -> None:
        """Poll until Prometheus has evaluated the rule named `rule_name` `count` more times from now.

        Waiting for evaluations (each rule's `lastEvaluation` moving on) rather than for a time makes
        "the alert did not fire" mean "did not fire in `count` evaluations", however loaded the machine.
        """
        seen: set[str] = set()
        first: list[str] = []

        def evaluated() -> bool:
            stamps = [
                rule["lastEvaluation"]
                for group in self.rule_groups()
                for rule in group["rules"]
                if rule["name"] == rule_name
            ]
            if not stamps:
                raise LookupError(f"no rule named {rule_name!r} is loaded")
            if not first:
                first.append(stamps[0])  # the evaluation before "now" does not count
            elif stamps[0] != first[0]:
                seen.add(stamps[0])
            return len(seen) >= count

        wait_until(
            evaluated, timeout, interval=0.2, what=f"{count} evaluations of {rule_name}", reraise=LookupError
        )

    def wait_for_series(self, expr: str, timeout: float = 60) -> list[dict[str, Any]]:
        """Poll until `expr` returns at least one series; return them (TimeoutError if never)."""
        found: list[dict[str, Any]] = []

        def has_series() -> bool:
            found[:] = self.query(expr)
            return bool(found)

        wait_until(has_series, timeout, interval=0.5, what=f"a series for {expr!r}")
        return found


@dataclass
class StaticMetrics:
    """An HTTP endpoint serving a metrics text the test can change."""

    url: str
    text: list[str] = field(default_factory=lambda: [""])

    def set(self, text: str) -> None:
        """Replace what /metrics returns."""
        self.text[0] = text


@contextmanager
def _serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextmanager
def static_metrics(text: str) -> Iterator[StaticMetrics]:
    """Serve `text` (Prometheus exposition format) at /metrics on a free loopback port."""
    box = [text]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = box[0].encode()
            self.send_response(200 if self.path == "/metrics" else 404)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    with _serve(Handler) as url:
        yield StaticMetrics(url, box)


@dataclass
class Delivery:
    """One webhook POST as received."""

    path: str
    headers: dict[str, str]
    payload: dict[str, Any]


@dataclass
class WebhookSink:
    """Collects webhook POSTs (Alertmanager's notifications)."""

    url: str
    deliveries: list[Delivery]

    def wait(self, predicate: Callable[[Delivery], bool], timeout: float) -> Delivery:
        """The first delivery matching `predicate`, waiting up to `timeout` seconds."""
        hits: list[Delivery] = []

        def arrived() -> bool:
            hits[:] = [d for d in list(self.deliveries) if predicate(d)]
            return bool(hits)

        wait_until(arrived, timeout, interval=0.5, what=f"a webhook delivery at {self.url}")
        return hits[0]


@contextmanager
def webhook_sink() -> Iterator[WebhookSink]:
    """An HTTP receiver on a free loopback port that records every POST and answers 200."""
    deliveries: list[Delivery] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            deliveries.append(Delivery(self.path, dict(self.headers.items()), json.loads(raw or b"{}")))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    with _serve(Handler) as url:
        yield WebhookSink(url, deliveries)


# --------------------------------------------------------------------------- Grafana dashboards

GRAFANA_DIR = Path(__file__).resolve().parents[2] / "grafana"
# Grafana's built-in interval variables, replaced by what they resolve to on a short test range.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}


@dataclass(frozen=True)
class PanelQuery:
    """One PromQL expression of one dashboard panel (or annotation)."""

    dashboard: str
    panel: str
    ref: str
    expr: str

    @property
    def where(self) -> str:
        """Human-readable location for failure messages."""
        return f"{self.dashboard} / {self.panel!r} ({self.ref})"

    def resolved(self) -> str:
        """The expression with Grafana's variables substituted, ready for the Prometheus API."""
        expr = self.expr
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        return expr


def load_dashboards(directory: Path = GRAFANA_DIR / "dashboards") -> dict[str, dict[str, Any]]:
    """Committed dashboard JSON by file name."""
    return {p.name: json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))}


def panel_queries(dashboards: dict[str, dict[str, Any]]) -> list[PanelQuery]:
    """Every panel target's PromQL, in dashboard and panel order."""
    return [
        PanelQuery(d["title"], panel["title"], target["refId"], target["expr"])
        for d in dashboards.values()
        for panel in d["panels"]
        for target in panel.get("targets", [])
    ]


def annotation_queries(dashboards: dict[str, dict[str, Any]]) -> list[PanelQuery]:
    """PromQL of every Prometheus annotation query."""
    return [
        PanelQuery(d["title"], a["name"], "annotation", a["expr"])
        for d in dashboards.values()
        for a in d["annotations"]["list"]
        if "expr" in a
    ]
