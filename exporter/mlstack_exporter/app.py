"""The exporter's Flask app: /metrics, /healthz, a summary page and the latest drift report."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from flask import Flask, Response, abort, jsonify, render_template, send_file
from mlflow.tracking import MlflowClient
from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_flask_exporter import PrometheusMetrics

from mlstack.config import Config, load_config
from mlstack.registry import make_client
from mlstack.store import PredictionStore
from mlstack_exporter.collectors import VERSION_GAUGES, SnapshotCollector
from mlstack_exporter.refreshers import (
    AccuracyRefresher,
    DriftRefresher,
    FeedbackRefresher,
    RefreshLoop,
    RegistryRefresher,
    RunsRefresher,
    drift_report_path,
)
from mlstack_exporter.state import ExporterState, Source, VersionInfo

EXTENSION = "mlstack_exporter"


class Exporter:
    """The refreshers, their threads and the state they share with the collector."""

    def __init__(self, config: Config, client: MlflowClient, store: PredictionStore) -> None:
        self.config = config
        self.state = ExporterState()
        self.client = client
        self.store = store
        self.registry_refresher = RegistryRefresher(config, client)
        self.runs_refresher = RunsRefresher(config, client)
        self.drift_refresher = DriftRefresher(config, client, store, self.champion)
        self.accuracy_refresher = AccuracyRefresher(config, store)
        self.feedback_refresher = FeedbackRefresher(config, client, store, self.champion)
        self.loops: list[RefreshLoop] = []
        self._schema_ready = False
        self._schema_lock = threading.Lock()
        self._registry_attempted = threading.Event()

    def champion(self) -> VersionInfo | None:
        """The champion as of the last registry refresh (drift keeps working while MLflow is down)."""
        snap = self.state.registry
        if snap is None:
            raise RuntimeError("the champion is not known yet: no successful registry refresh")
        return snap.version(snap.champion) if snap.champion else None

    def _store_ready(self) -> PredictionStore:
        with self._schema_lock:  # the drift and accuracy threads both get here at start-up
            if not self._schema_ready:  # the exporter may start before the predictor created the tables
                self.store.create_schema()
                self._schema_ready = True
        return self.store

    def _registry(self) -> Any:
        try:
            return self.registry_refresher.refresh()
        finally:
            self._registry_attempted.set()

    def _drift(self) -> Any:
        # At start-up the drift thread waits for the first registry attempt to learn the champion.
        self._registry_attempted.wait(timeout=self.config.exporter.refresh_interval_s + 30)
        self._store_ready()
        return self.drift_refresher.refresh()

    def _accuracy(self) -> Any:
        self._store_ready()
        return self.accuracy_refresher.refresh()

    def _feedback(self) -> Any:
        self._registry_attempted.wait(timeout=self.config.exporter.refresh_interval_s + 30)
        self._store_ready()
        return self.feedback_refresher.refresh()

    def jobs(self) -> list[tuple[Source, Any, float]]:
        settings = self.config.exporter
        return [
            ("registry", self._registry, settings.refresh_interval_s),
            ("runs", self.runs_refresher.refresh, settings.refresh_interval_s),
            ("drift", self._drift, settings.drift_interval_s),
            ("accuracy", self._accuracy, settings.refresh_interval_s),
            ("feedback", self._feedback, settings.refresh_interval_s),
        ]

    def refresh_all(self) -> dict[str, bool]:
        """Run every refresher once, in order (tests, benchmark); returns success per source."""
        return {source: self.state.run_refresh(source, job) for source, job, _ in self.jobs()}

    def start(self) -> None:
        """Start one daemon thread per source; idempotent."""
        if self.loops:
            return
        self.loops = [RefreshLoop(self.state, source, job, interval) for source, job, interval in self.jobs()]
        for loop in self.loops:
            loop.start()

    def stop(self, timeout: float = 10.0) -> None:
        for loop in self.loops:
            loop.stop()
        for loop in self.loops:
            loop.join(timeout)
        self.loops = []

    def summary(self) -> dict[str, Any]:
        """What the summary page and /healthz show, as plain data."""
        now = time.time()
        status = {
            name: {**asdict(st), "age_s": (now - st.last_success) if st.last_success else None}
            for name, st in self.state.status_copy().items()
        }
        registry = self.state.registry
        runs = self.state.runs
        drift = self.state.drift
        accuracy = self.state.accuracy
        return {
            "model": self.config.project.registered_model,
            "tracking_uri": self.config.mlflow.tracking_uri,
            "sources": status,
            "registry": asdict(registry) if registry else None,
            "experiment_runs": runs.experiment_runs if runs else {},
            "champion_age_s": (now - registry.champion_since)
            if registry and registry.champion_since
            else None,
            "drift": {
                **{k: v for k, v in asdict(drift).items() if k != "result"},
                "result": drift.result.to_dict() if drift.result else None,
            }
            if drift
            else None,
            "accuracy": asdict(accuracy) if accuracy else None,
        }


def _check_single_process() -> None:
    # prometheus-flask-exporter swaps in an empty registry in multiprocess mode: our snapshot
    # collector lives in this process's memory, so it would silently disappear.
    if any(key.lower() == "prometheus_multiproc_dir" for key in os.environ):
        raise RuntimeError(
            "the exporter is single-process by design (threads, one worker); unset PROMETHEUS_MULTIPROC_DIR"
        )


def create_app(
    config: Config | None = None,
    *,
    start_background: bool = True,
    client: MlflowClient | None = None,
    store: PredictionStore | None = None,
) -> Flask:
    """Build the exporter app.

    Args:
        config: the effective config; None loads it (mlstack.yaml + env overrides).
        start_background: start the refresher threads (tests call `refresh_all()` instead).
        client: MLflow client to use (default: the configured tracking server).
        store: prediction store to read (default: the configured URL).
    """
    _check_single_process()
    config = config or load_config()
    exporter = Exporter(
        config,
        client or make_client(config),
        store or PredictionStore(config.prediction_store_url),
    )
    app = Flask(__name__)
    app.extensions[EXTENSION] = exporter

    # One registry per app: two apps in one process (tests) never double-register a metric.
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    registry.register(SnapshotCollector(exporter.state))
    PrometheusMetrics(app, registry=registry, group_by="endpoint")  # /metrics itself is not tracked

    @app.get("/healthz")
    def healthz() -> Response:
        """Liveness: the process answers; per-source freshness is informational (see /metrics)."""
        summary = exporter.summary()
        return jsonify({"status": "ok", "sources": summary["sources"]})

    @app.get("/")
    def index() -> str:
        summary = exporter.summary()
        return render_template("summary.html", s=summary, gauges=VERSION_GAUGES, now=time.time())

    @app.get("/summary.json")
    def summary_json() -> Response:
        return jsonify(exporter.summary())

    @app.get("/reports/drift")
    def drift_report() -> Response:
        path = Path(drift_report_path(config))
        if exporter.state.drift is None or not path.is_file():
            abort(404, description="no drift report yet: the first drift refresh has not finished")
        response = send_file(path, mimetype="text/html", max_age=0)
        response.headers["Cache-Control"] = "no-store"
        return response

    if start_background:
        exporter.start()
    return app


def exporter_of(app: Flask) -> Exporter:
    """The Exporter behind an app made by `create_app`."""
    exporter: Exporter = app.extensions[EXTENSION]
    return exporter
