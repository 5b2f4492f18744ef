"""The predictor's Prometheus metrics (names from docs/metrics.md) and the request-timing ASGI middleware."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlstack.contract import PROMETHEUS_MULTIPROC_DIR_ENV
from mlstack.prediction_log import REFUSAL_REASONS, RefusalReason, WriterHooks
from mlstack.schema import UNKNOWN_ERROR
from mlstack_api.model import ServedModel

LATENCY_BUCKETS = (0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
LOAD_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
NO_MODEL = "none"
UNMATCHED_ROUTE = "unmatched"


def multiprocess_dir() -> str | None:
    """The shared metrics directory when prometheus_client runs in multiprocess mode, else None.

    The mode is fixed when prometheus_client is imported (`PROMETHEUS_MULTIPROC_DIR` set by
    `python -m mlstack_api` before it starts several workers); this asks the library, not the env.
    """
    if not getattr(values.ValueClass, "_multiprocess", False):
        return None
    return os.environ.get(PROMETHEUS_MULTIPROC_DIR_ENV)


class _ServedModelsCollector(Collector):
    """`mlops_model_info` and `mlops_model_loaded_timestamp_seconds` across workers (multiprocess mode).

    prometheus_client cannot remove a label set in multiprocess mode, so a Gauge would keep the old
    version's series after a swap (and `and on (model, version) mlops_model_info` would still match
    it). Each worker writes the model it serves to `served-<pid>.json` instead; a scrape reports the
    distinct models of the live workers (both versions, for the seconds a swap takes) and the
    newest load time.
    """

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)

    def collect(self) -> Iterable[Metric]:
        info = GaugeMetricFamily("mlops_model_info", "The model being served", labels=list(_INFO_LABELS))
        loaded = GaugeMetricFamily("mlops_model_loaded_timestamp_seconds", "When the served model was loaded")
        seen: set[tuple[str, ...]] = set()
        newest = None
        for path in sorted(self.directory.glob("served-*.json")):
            if not _alive(path.stem.removeprefix("served-")):
                continue
            try:
                served = json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # a worker is replacing it right now
            labels = tuple(str(served[name]) for name in _INFO_LABELS)
            if labels not in seen:
                seen.add(labels)
                info.add_metric(list(labels), 1)
            newest = max(newest or 0.0, float(served["loaded_at"]))
        yield info
        if newest is not None:
            loaded.add_metric([], newest)
        yield loaded


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


_INFO_LABELS = ("model", "version", "alias", "run_id", "runtime")


class ApiMetrics(WriterHooks):
    """All predictor metrics; also the prediction-log writer's hooks.

    Single process (one worker, or an app built in a test): one registry per app, so tests can
    build several apps. Multiprocess mode (several uvicorn workers): every value lives in a
    per-process file of the shared directory and `/metrics` sums them (`exposition`), so the
    answer does not depend on which worker Prometheus reaches. Gauges then need a rule for
    combining workers; each one below states its choice.
    """

    def __init__(self) -> None:
        self.multiprocess_dir = multiprocess_dir()
        self.registry = CollectorRegistry()
        if self.multiprocess_dir is None:
            # Per-process CPU/memory: meaningless summed over workers, so only for a single worker.
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
            "Instances per prediction request",
            ["model_version"],
            buckets=BATCH_BUCKETS,
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
        self.feedback = Counter("mlops_feedback", "Feedback posts", ["result"], registry=self.registry)
        # Rows waiting for their commit: the container's total over its live workers (a dead
        # worker's waiting requests died with it).
        self.log_depth = Gauge(
            "mlops_prediction_log_queue_depth",
            "Predictions waiting for their prediction-store commit",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.log_written = Counter(
            "mlops_prediction_log_written", "Predictions committed to the store", registry=self.registry
        )
        self.log_commit_duration = Histogram(
            "mlops_prediction_log_commit_duration_seconds",
            "Duration of one prediction-log transaction (write and commit)",
            buckets=COMMIT_BUCKETS,
            registry=self.registry,
        )
        self.log_write_errors = Counter(
            "mlops_prediction_log_write_errors",
            "Failed prediction-log transactions (their requests were refused)",
            registry=self.registry,
        )
        self.log_refused = Counter(
            "mlops_prediction_log_refused",
            "Predictions refused with 503 because the prediction log could not store them",
            ["reason"],
            registry=self.registry,
        )
        self.unknown_categories = Counter(
            "mlops_input_unknown_category",
            "Categorical input values the served model has not seen, per feature (accepted where the "
            "feature's vocabulary is open: encoded as none of the known categories)",
            ["model_version", "feature"],
            registry=self.registry,
        )
        self._unknown_children: dict[tuple[str, str], Any] = {}
        self.out_of_range = Counter(
            "mlops_input_out_of_range",
            "Input values outside the served model's training range, per feature (accepted and served: "
            "that is how drift shows; the feedback quarantine holds such rows out of training)",
            ["model_version", "feature"],
            registry=self.registry,
        )
        # Per version: numeric feature positions, training minima and maxima, and the counter children.
        self._ranges: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, list[Any]]] = {}
        for result in ("success", "failure", "unchanged"):
            self.reloads.labels(result)
        for result in ("accepted", "unknown_prediction"):
            self.feedback.labels(result)
        self._refused_children = {reason: self.log_refused.labels(reason) for reason in REFUSAL_REASONS}
        if self.multiprocess_dir is None:
            self.model_info: Gauge | None = Gauge(
                "mlops_model_info", "The model being served", list(_INFO_LABELS), registry=self.registry
            )
            self.loaded_timestamp: Gauge | None = Gauge(
                "mlops_model_loaded_timestamp_seconds",
                "When the served model was loaded",
                registry=self.registry,
            )
            self._scrape_registry = self.registry
        else:
            self.model_info = self.loaded_timestamp = None
            self._scrape_registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(self._scrape_registry, self.multiprocess_dir)
            self._scrape_registry.register(_ServedModelsCollector(self.multiprocess_dir))
        # Label children are looked up once and cached: labels() costs more than observe().
        self._request_children: dict[tuple[str, str, str, str], tuple[Any, Any]] = {}
        self._prediction_children: dict[tuple[str, str], Any] = {}
        self._batch_children: dict[str, Any] = {}
        self._info_labels: tuple[str, ...] | None = None

    def exposition(self) -> bytes:
        """The `/metrics` body: this process's registry, or the sum over all workers."""
        if self.multiprocess_dir is not None:
            self._forget_dead_workers()
        return generate_latest(self._scrape_registry)

    def _forget_dead_workers(self) -> None:
        """Drop dead workers' live-mode gauge files (uvicorn restarts workers without telling us)."""
        for path in Path(self.multiprocess_dir or ".").glob("gauge_live*_*.db"):
            pid = path.stem.rsplit("_", 1)[-1]
            if not _alive(pid):
                multiprocess.mark_process_dead(int(pid), self.multiprocess_dir)

    def close(self) -> None:
        """A worker that stops takes its live gauges and its served-model file with it."""
        if self.multiprocess_dir is not None:
            multiprocess.mark_process_dead(os.getpid(), self.multiprocess_dir)
            (Path(self.multiprocess_dir) / f"served-{os.getpid()}.json").unlink(missing_ok=True)

    def observe_request(self, route: str, method: str, status: str, version: str, seconds: float) -> None:
        key = (route, method, status, version)
        children = self._request_children.get(key)
        if children is None:
            children = (self.request_duration.labels(*key), self.requests.labels(*key))
            self._request_children[key] = children
        children[0].observe(seconds)
        children[1].inc()

    def observe_predictions(self, model: ServedModel, class_counts: Sequence[int]) -> None:
        """One request's predictions: the batch size and the count per predicted class."""
        version = model.version
        batch_child = self._batch_children.get(version)
        if batch_child is None:
            batch_child = self._batch_children[version] = self.batch_size.labels(version)
        batch_child.observe(sum(class_counts))
        for name, count in zip(model.class_names, class_counts, strict=True):
            if count:
                child = self._prediction_children.get((version, name))
                if child is None:
                    child = self._prediction_children[(version, name)] = self.predictions.labels(
                        version, name
                    )
                child.inc(count)

    def _unknown_child(self, version: str, feature: str) -> Any:
        child = self._unknown_children.get((version, feature))
        if child is None:
            child = self._unknown_children[(version, feature)] = self.unknown_categories.labels(
                version, feature
            )
        return child

    def observe_unknown_categories(self, model: ServedModel, counts: Mapping[str, int]) -> None:
        """Count one request's unseen categories, per feature."""
        for feature, count in counts.items():
            self._unknown_child(model.version, feature).inc(count)

    def _range_of(self, model: ServedModel) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Any]]:
        """Per version: the numeric features' positions, training minima and maxima, counter children."""
        found = self._ranges.get(model.version)
        if found is None:
            numeric = [
                (position, spec)
                for position, spec in enumerate(model.schema.features)
                if not spec.is_categorical and spec.minimum is not None and spec.maximum is not None
            ]
            found = (
                np.array([position for position, _ in numeric], dtype=np.intp),
                np.array([spec.minimum for _, spec in numeric], dtype=np.float64),
                np.array([spec.maximum for _, spec in numeric], dtype=np.float64),
                [self.out_of_range.labels(model.version, spec.name) for _, spec in numeric],
            )
            self._ranges[model.version] = found
        return found

    def observe_out_of_range(self, model: ServedModel, matrix: Any) -> None:
        """Count, per numeric feature, the values of a validated batch outside the training range.

        Missing values (NaN) are not counted; categorical features have no range.
        """
        positions, low, high, children = self._range_of(model)
        if not len(positions):
            return
        if isinstance(matrix, np.ndarray) and matrix.dtype.kind == "f":
            values = matrix[:, positions]
            # The same rounding on both sides: a value equal to the training maximum is in range.
            low, high = low.astype(matrix.dtype), high.astype(matrix.dtype)
        else:  # a frame or an object matrix (categorical features): numeric columns as floats
            table = matrix.to_numpy() if hasattr(matrix, "to_numpy") else np.asarray(matrix)
            values = np.asarray(table[:, positions], dtype=np.float64)
        with np.errstate(invalid="ignore"):
            outside = ((values < low) | (values > high)).sum(axis=0)
        for index in np.flatnonzero(outside):
            children[index].inc(int(outside[index]))

    def model_loaded(self, model: ServedModel) -> None:
        for spec in model.schema.features:  # each open vocabulary's series exists (at 0) from the load
            if spec.is_categorical and spec.unknown != UNKNOWN_ERROR:
                self._unknown_child(model.version, spec.name)
        labels = (model.name, model.version, model.alias, model.run_id, model.runtime)
        self.load_duration.labels(model.runtime).observe(model.load_seconds)
        self._range_of(model)  # every feature's series exists (at 0) from the first scrape
        if self.model_info is None or self.loaded_timestamp is None:
            served = {**dict(zip(_INFO_LABELS, labels, strict=True)), "loaded_at": model.loaded_at}
            target = Path(self.multiprocess_dir or ".") / f"served-{os.getpid()}.json"
            temporary = target.with_suffix(".tmp")
            temporary.write_text(json.dumps(served))
            temporary.replace(target)  # atomic: a scrape reads the old or the new model, never half
            return
        # Set the new series before removing the old one, so no scrape sees neither.
        self.model_info.labels(*labels).set(1)
        if self._info_labels is not None and self._info_labels != labels:
            self.model_info.remove(*self._info_labels)
        self._info_labels = labels
        self.loaded_timestamp.set(model.loaded_at)

    # -- prediction-log writer hooks (called from the writer thread) ----------------------------

    def committed(self, rows: int, seconds: float) -> None:
        self.log_written.inc(rows)
        self.log_commit_duration.observe(seconds)

    def failed(self) -> None:
        self.log_write_errors.inc()

    def refused(self, reason: RefusalReason, rows: int) -> None:
        self._refused_children[reason].inc(rows)

    def depth(self, rows: int) -> None:
        self.log_depth.set(rows)


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
