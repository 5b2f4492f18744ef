"""The predictor's Prometheus metrics (names from docs/metrics.md) and the request-timing ASGI middleware."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlstack.prediction_log import PredictionLogWriter
from mlstack_api.model import ServedModel

LATENCY_BUCKETS = (0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
LOAD_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
NO_MODEL = "none"
UNMATCHED_ROUTE = "unmatched"


class _PredictionLogCollector(Collector):
    """Reads the writer's plain counters at scrape time, so the request path updates no metric for them."""

    def __init__(self, writer: Callable[[], PredictionLogWriter | None]) -> None:
        self._writer = writer

    def collect(self) -> Iterable[Metric]:
        writer = self._writer()
        stats = writer.stats() if writer is not None else None
        depth = GaugeMetricFamily(
            "mlops_prediction_log_queue_depth", "Records waiting to be written to the prediction store"
        )
        depth.add_metric([], stats.depth if stats else 0)
        yield depth
        for name, help_text, value in (
            ("mlops_prediction_log_written", "Records committed to the store", stats.written if stats else 0),
            (
                "mlops_prediction_log_dropped",
                "Records dropped because the buffer was full",
                stats.dropped if stats else 0,
            ),
            (
                "mlops_prediction_log_write_errors",
                "Failed batch writes (retried)",
                stats.write_errors if stats else 0,
            ),
        ):
            counter = CounterMetricFamily(name, help_text)
            counter.add_metric([], value)
            yield counter


class ApiMetrics:
    """All predictor metrics in one registry (one per app, so tests can build several apps)."""

    def __init__(self, writer: Callable[[], PredictionLogWriter | None] = lambda: None) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        labels = ["route", "method", "status", "model_version"]
        self.request_duration = Histogram(
            "mlops_http_request_duration_seconds",
            "Request latency",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.requests = Counter("mlops_http_requests", "Requests served", labels, registry=self.registry)
        self.predictions = Counter(
            "mlops_predictions",
            "Predicted instances by class",
            ["model_version", "predicted_class"],
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "mlops_prediction_batch_size",
            "Instances per /predict request",
            ["model_version"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.model_info = Gauge(
            "mlops_model_info",
            "The model being served",
            ["model", "version", "alias", "run_id", "runtime"],
            registry=self.registry,
        )
        self.reloads = Counter(
            "mlops_model_reload", "Alias polls and reloads", ["result"], registry=self.registry
        )
        self.load_duration = Histogram(
            "mlops_model_load_duration_seconds",
            "Time to load a model version",
            ["runtime"],
            buckets=LOAD_BUCKETS,
            registry=self.registry,
        )
        self.loaded_timestamp = Gauge(
            "mlops_model_loaded_timestamp_seconds", "When the served model was loaded", registry=self.registry
        )
        self.feedback = Counter("mlops_feedback", "Feedback posts", ["result"], registry=self.registry)
        for result in ("success", "failure", "unchanged"):
            self.reloads.labels(result)
        for result in ("accepted", "unknown_prediction"):
            self.feedback.labels(result)
        self.registry.register(_PredictionLogCollector(writer))
        # Label children are looked up once and cached: labels() costs more than observe().
        self._request_children: dict[tuple[str, str, str, str], tuple[Any, Any]] = {}
        self._prediction_children: dict[tuple[str, str], Any] = {}
        self._batch_children: dict[str, Any] = {}
        self._info_labels: tuple[str, ...] | None = None

    def observe_request(self, route: str, method: str, status: str, version: str, seconds: float) -> None:
        key = (route, method, status, version)
        children = self._request_children.get(key)
        if children is None:
            children = (self.request_duration.labels(*key), self.requests.labels(*key))
            self._request_children[key] = children
        children[0].observe(seconds)
        children[1].inc()

    def observe_predictions(self, version: str, class_names: Iterable[str], batch: int) -> None:
        batch_child = self._batch_children.get(version)
        if batch_child is None:
            batch_child = self._batch_children[version] = self.batch_size.labels(version)
        batch_child.observe(batch)
        for name in class_names:
            child = self._prediction_children.get((version, name))
            if child is None:
                child = self._prediction_children[(version, name)] = self.predictions.labels(version, name)
            child.inc()

    def model_loaded(self, model: ServedModel) -> None:
        # Set the new series before removing the old one, so no scrape sees neither.
        labels = (model.name, model.version, model.alias, model.run_id, model.runtime)
        self.model_info.labels(*labels).set(1)
        if self._info_labels is not None and self._info_labels != labels:
            self.model_info.remove(*self._info_labels)
        self._info_labels = labels
        self.loaded_timestamp.set(model.loaded_at)
        self.load_duration.labels(model.runtime).observe(model.load_seconds)


class RequestMetricsMiddleware:
    """Pure ASGI middleware timing every HTTP request (cheaper than BaseHTTPMiddleware).

    The route label is the matched route's path template (bounded cardinality); the model
    version is what the handler served (`scope["state"]["model_version"]`) or else the
    version being served when the request ends.
    """

    def __init__(self, app: ASGIApp, metrics: ApiMetrics, current_version: Callable[[], str]) -> None:
        self.app = app
        self.metrics = metrics
        self.current_version = current_version

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = "500"

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = str(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or UNMATCHED_ROUTE
            state = scope.get("state") or {}
            version = state.get("model_version") or self.current_version()
            self.metrics.observe_request(
                path, scope["method"], status, version, time.perf_counter() - started
            )
