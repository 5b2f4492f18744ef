"""The predictor's process state: config, served model, prediction log and metrics, with start/stop."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field

from mlflow import MlflowClient

from mlstack.config import Config
from mlstack.contract import ADMIN_TOKEN_ENV, FEEDBACK_TOKEN_ENV
from mlstack.prediction_log import PredictionLogWriter, WriterSettings
from mlstack.registry import configure_fail_fast_client
from mlstack.store import PredictionStore
from mlstack_api.metrics import NO_MODEL, ApiMetrics
from mlstack_api.model import ServedModel
from mlstack_api.watcher import ModelWatcher

log = logging.getLogger(__name__)

#: The log writer and model watcher threads hold the GIL in slices of this many seconds (default 5 ms);
#: shorter slices keep them from adding milliseconds to the request latency tail.
GIL_SWITCH_INTERVAL_S = 0.0005
SHUTDOWN_FLUSH_TIMEOUT_S = 10.0


def admin_token_from_env() -> str | None:
    """The admin bearer token, or None (admin endpoints disabled) when unset or blank."""
    token = os.environ.get(ADMIN_TOKEN_ENV, "").strip()
    return token or None


def feedback_token_from_env() -> str | None:
    """The bearer token of POST /feedback, or None (feedback disabled) when unset or blank."""
    token = os.environ.get(FEEDBACK_TOKEN_ENV, "").strip()
    return token or None


@dataclass
class ApiState:
    """Everything the routes share. `model` is set only when a fixed model is injected (tests)."""

    config: Config
    admin_token: str | None
    fixed_model: ServedModel | None = None
    metrics: ApiMetrics = field(init=False)
    watcher: ModelWatcher | None = None
    store: PredictionStore | None = None
    writer: PredictionLogWriter | None = None
    feedback_token: str | None = None

    def __post_init__(self) -> None:
        self.metrics = ApiMetrics()
        if self.fixed_model is not None:
            self.metrics.model_loaded(self.fixed_model)

    @property
    def model(self) -> ServedModel | None:
        """The model to serve this request with: read once per request, never re-read mid-request."""
        if self.fixed_model is not None:
            return self.fixed_model
        watcher = self.watcher
        return watcher.current if watcher is not None else None

    def model_version(self) -> str:
        model = self.model
        return model.version if model is not None else NO_MODEL

    def not_ready_reason(self) -> str:
        if self.watcher is not None and self.watcher.last_error:
            return f"no model loaded yet: {self.watcher.last_error}"
        project = self.config.project
        return f"no model loaded yet: waiting for models:/{project.registered_model}@{project.champion_alias}"

    def _start_prediction_log(self) -> None:
        settings = self.config.prediction_store
        self.store = PredictionStore(self.config.prediction_store_url)
        try:
            self.store.create_schema()
        except Exception as exc:  # the store may come up later: the writer retries
            log.warning("prediction store not available yet (%s); predictions get 503 until it is", exc)
        self.writer = PredictionLogWriter(
            self.store,
            WriterSettings(
                queue_size=settings.queue_size,
                batch_size=settings.batch_size,
                commit_delay_s=settings.commit_delay_s,
                synchronous=settings.sqlite_synchronous,
                busy_timeout_s=settings.commit_timeout_s,
            ),
            hooks=self.metrics,
        )
        self.writer.start()

    def start(self) -> None:
        """Open the prediction store, start the log writer and (unless a model is injected) the watcher."""
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        settings = self.config.prediction_store
        if settings.enabled:
            self._start_prediction_log()
        else:
            log.warning(
                "prediction log disabled (prediction_store.enabled=false): no drift, feedback or CT data"
            )
        if self.fixed_model is None:
            configure_fail_fast_client(self.config.mlflow.tracking_uri)
            project = self.config.project
            self.watcher = ModelWatcher(
                MlflowClient(tracking_uri=self.config.mlflow.tracking_uri),
                project.registered_model,
                project.champion_alias,
                self.config.api.reload_interval_s,
                on_result=lambda result: self.metrics.reloads.labels(result).inc(),
                on_loaded=self.metrics.model_loaded,
            )
            self.watcher.start()

    def stop(self) -> None:
        """Stop polling, then drain the prediction log (graceful shutdown)."""
        if self.watcher is not None:
            self.watcher.stop()
        if self.writer is not None:
            self.writer.close(SHUTDOWN_FLUSH_TIMEOUT_S)
            stats = self.writer.stats()
            log.info(
                "prediction log closed: %d predictions in %d commits, %d failed commits, %d refused",
                stats.written,
                stats.commits,
                stats.write_errors,
                stats.refused,
            )
        if self.store is not None:
            self.store.dispose()
        self.metrics.close()
