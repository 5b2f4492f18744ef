"""Background refreshers: MLflow registry/tracking, drift and live accuracy, each publishing a snapshot."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mlstack import contract
from mlstack.config import Config
from mlstack.drift_report import download_reference, read_window, write_report
from mlstack.quarantine import check_rows, decisions, labelled_rows, quarantined_count
from mlstack.registry import history
from mlstack.schema import FeatureSchema
from mlstack.store import PredictionStore
from mlstack_exporter.runs import PAGE_SIZE, RunCounter
from mlstack_exporter.state import (
    AccuracySnapshot,
    DriftSnapshot,
    ExporterState,
    FeedbackSnapshot,
    PipelineRunInfo,
    RegistrySnapshot,
    RunsSnapshot,
    Source,
    VersionAccuracy,
    VersionInfo,
)

log = logging.getLogger(__name__)

VERSION_METRICS = ("accuracy", "precision_weighted", "recall_weighted", "f1_weighted")
PIPELINE_STATUSES = {"success", "failed", "skipped"}
FULL_RECOUNT_PERIOD_S = 600.0  # deleted runs drop out of the counts within this


def pipeline_experiment(config: Config) -> str:
    """The experiment the pipeline logs one run per execution into."""
    return contract.pipeline_experiment(config.project.experiment)


def drift_report_path(config: Config) -> Path:
    """Where the latest drift report is written (the pipeline's drift-report stage archives it)."""
    if config.exporter.drift_report_path:
        return Path(config.exporter.drift_report_path)
    return config.state_dir / contract.STATE_DRIFT_REPORT


def _missing(exc: MlflowException) -> bool:
    return exc.error_code in {"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"}


class RegistryRefresher:
    """Registry and tracking state, fetched incrementally.

    Versions are immutable, so a version's run metrics are fetched once. A steady-state refresh
    costs five calls whatever the number of runs.
    """

    source: Source = "registry"

    def __init__(self, config: Config, client: MlflowClient) -> None:
        self.config = config
        self.client = client
        self._versions: dict[str, VersionInfo] = {}
        self._champion_first_seen: tuple[str | None, float, bool] | None = None

    def _all_versions(self, name: str) -> list[ModelVersion]:
        found: list[ModelVersion] = []
        token: str | None = None
        while True:
            page = self.client.search_model_versions(
                f"name = '{name}'", max_results=PAGE_SIZE, page_token=token
            )
            found.extend(page)
            token = page.token
            if not token:
                return found

    def _version_info(self, mv: ModelVersion) -> VersionInfo:
        metrics: dict[str, float] = {}
        if mv.run_id:
            try:
                metrics = dict(self.client.get_run(mv.run_id).data.metrics)
            except MlflowException as exc:
                if not _missing(exc):
                    raise
        for key in VERSION_METRICS:  # a deleted run: fall back to the metric values tagged on the version
            if key not in metrics and key in (mv.tags or {}):
                with contextlib.suppress(ValueError):
                    metrics[key] = float(mv.tags[key])
        return VersionInfo(
            version=str(mv.version),
            run_id=mv.run_id,
            created_at=(mv.creation_timestamp or 0) / 1000.0,
            metrics={k: v for k, v in metrics.items() if k in VERSION_METRICS},
            tags=dict(mv.tags or {}),
        )

    def _last_pipeline_run(self) -> PipelineRunInfo | None:
        experiment = self.client.get_experiment_by_name(pipeline_experiment(self.config))
        if experiment is None:
            return None
        runs = self.client.search_runs(
            [experiment.experiment_id], max_results=20, order_by=["attributes.start_time DESC"]
        )
        for run in runs:  # the newest run that has finished (a running pipeline has no status yet)
            status = run.data.tags.get(contract.TAG_STATUS)
            if status not in PIPELINE_STATUSES:
                continue
            duration = run.data.metrics.get("duration_s")
            ended = run.info.end_time / 1000.0 if run.info.end_time else None
            if ended is None and duration is not None and run.info.start_time:
                ended = run.info.start_time / 1000.0 + duration
            return PipelineRunInfo(
                run_id=run.info.run_id,
                status=status,
                trigger=run.data.tags.get(contract.TAG_TRIGGER, "unknown"),
                duration_s=duration,
                ended_at=ended,
            )
        return None

    def _champion_since(self, champion: str | None, created: VersionInfo | None) -> float | None:
        if champion is None:
            return None
        alias = self.config.project.champion_alias
        moves = [
            m
            for m in history(self.client, self.config.project.registered_model)
            if m.alias == alias and m.to_version == champion
        ]
        if moves:
            return max(m.at for m in moves)
        # The alias moves before its history entry is written: until the entry shows up, the move
        # happened at most one refresh before we first saw it. Only at start-up is creation time all we have.
        seen = self._champion_first_seen
        if seen is not None and seen[0] == champion and seen[2]:
            return seen[1]
        return created.created_at if created else None

    def refresh(self) -> RegistrySnapshot:
        project = self.config.project
        name = project.registered_model
        try:
            model = self.client.get_registered_model(name)
            aliases = {str(k): str(v) for k, v in (model.aliases or {}).items()}
            exists = True
        except MlflowException as exc:
            if not _missing(exc):
                raise
            aliases, exists = {}, False
        versions = self._all_versions(name) if exists else []
        listed = {str(mv.version) for mv in versions}
        self._versions = {v: info for v, info in self._versions.items() if v in listed}
        for mv in versions:
            if str(mv.version) not in self._versions:
                self._versions[str(mv.version)] = self._version_info(mv)
        champion = aliases.get(project.champion_alias)
        previous = self._champion_first_seen
        if previous is None or previous[0] != champion:
            # (champion, when first seen, seen to change while we were watching)
            self._champion_first_seen = (champion, time.time(), previous is not None)
        return RegistrySnapshot(
            model=name,
            model_exists=exists,
            versions=tuple(sorted(self._versions.values(), key=lambda v: int(v.version))),
            aliases=aliases,
            champion=champion,
            challenger=aliases.get(project.challenger_alias),
            champion_since=self._champion_since(champion, self._versions.get(champion or "")),
            pipeline=self._last_pipeline_run(),
            taken_at=time.time(),
        )


class RunsRefresher:
    """Active runs per experiment, one `RunCounter` each: incremental, with a full recount every ~10 min."""

    source: Source = "runs"

    def __init__(
        self, config: Config, client: MlflowClient, *, full_recount_every: int | None = None
    ) -> None:
        self.config = config
        self.client = client
        self.full_recount_every = full_recount_every or max(
            1, round(FULL_RECOUNT_PERIOD_S / config.exporter.refresh_interval_s)
        )
        self._counters: dict[str, RunCounter] = {}

    def refresh(self) -> RunsSnapshot:
        counts: dict[str, int] = {}
        token: str | None = None
        while True:
            page = self.client.search_experiments(max_results=PAGE_SIZE, page_token=token)
            for exp in page:
                counter = self._counters.get(exp.experiment_id)
                if counter is None:
                    counter = RunCounter(exp.experiment_id, full_every=self.full_recount_every)
                    self._counters[exp.experiment_id] = counter
                counts[exp.name] = counter.update(self.client)
            token = page.token
            if not token:
                break
        return RunsSnapshot(counts, time.time())


class DriftRefresher:
    """The latest prediction window against the champion's reference sample (cached per version)."""

    source: Source = "drift"

    def __init__(
        self,
        config: Config,
        client: MlflowClient,
        store: PredictionStore,
        champion: Callable[[], VersionInfo | None],
    ) -> None:
        self.config = config
        self.client = client
        self.store = store
        self.champion = champion
        self.report_path = drift_report_path(config)
        self._references: dict[str, tuple[pd.DataFrame, str]] = {}

    def reference(self, version: VersionInfo) -> tuple[pd.DataFrame, str]:
        """The reference sample of a version's training run and its hash (downloaded once per version)."""
        cached = self._references.get(version.version)
        if cached is not None:
            return cached
        if not version.run_id:
            raise RuntimeError(f"model version {version.version} has no run, so no drift reference")
        frame, digest = download_reference(self.client, version.run_id)
        ref_hash = version.tags.get(contract.TAG_DATA_HASH) or digest
        self._references = {version.version: (frame, ref_hash)}  # keep only the current champion's
        return frame, ref_hash

    def refresh(self) -> DriftSnapshot:
        version = self.champion()
        if version is None:
            report = write_report(self.config, self.report_path, None, None, None)
            return DriftSnapshot(report.status, 0, report.min_rows, None, None, None, None, time.time())
        reference, ref_hash = self.reference(version)
        window = read_window(self.store, self.config.exporter.drift_window)
        report = write_report(self.config, self.report_path, version.version, reference, window)
        result = dataclasses.replace(report.result, snapshot=None) if report.result else None
        return DriftSnapshot(
            report.status, report.rows, report.min_rows, version.version, ref_hash, result,
            str(self.report_path), time.time(),
        )  # fmt: skip


class AccuracyRefresher:
    """Rolling accuracy over the newest `exporter.accuracy_window` predictions with feedback, per version."""

    source: Source = "accuracy"

    def __init__(self, config: Config, store: PredictionStore) -> None:
        self.config = config
        self.store = store

    def refresh(self) -> AccuracySnapshot:
        window = self.config.exporter.accuracy_window
        frame = self.store.labelled(limit=window)
        per_version: dict[str, VersionAccuracy] = {}
        if not frame.empty:
            correct = (frame["prediction"].astype(int) == frame["true_label"].astype(int)).groupby(
                frame["model_version"].astype(str)
            )
            for version, hits in correct:
                per_version[str(version)] = VersionAccuracy(float(hits.mean()), int(hits.size))
        return AccuracySnapshot(self.config.project.registered_model, window, per_version, time.time())


class FeedbackRefresher:
    """The quarantine check (mlstack.quarantine) on the newest labelled predictions.

    The same rules the pipeline applies, against the champion's feature schema, so the excluded
    share is known (and can alert) before a retrain runs; plus the size of the quarantine table.
    """

    source: Source = "feedback"

    def __init__(
        self,
        config: Config,
        client: MlflowClient,
        store: PredictionStore,
        champion: Callable[[], VersionInfo | None],
    ) -> None:
        self.config = config
        self.client = client
        self.store = store
        self.champion = champion
        self._schemas: dict[str, FeatureSchema | None] = {}

    def schema(self, version: VersionInfo) -> FeatureSchema | None:
        """A version's feature schema (its run's artifact), fetched once per version.

        None when the version has none (not registered by this pipeline): its feedback cannot be
        checked. MLflow being unreachable is an error, so the source shows as failing.
        """
        if version.version in self._schemas:
            return self._schemas[version.version]
        schema = None
        if version.run_id:
            with tempfile.TemporaryDirectory(prefix="mlstack-schema-") as tmp:
                try:
                    local = Path(
                        self.client.download_artifacts(version.run_id, contract.FEATURE_SCHEMA_ARTIFACT, tmp)
                    )
                    schema = FeatureSchema.from_dict(json.loads(local.read_text()))
                except FileNotFoundError:
                    schema = None
                except MlflowException as exc:
                    if not _missing(exc):
                        raise
        self._schemas = {version.version: schema}
        return schema

    def refresh(self) -> FeedbackSnapshot:
        window = self.config.exporter.feedback_window
        quarantined = quarantined_count(self.store)
        version = self.champion()
        schema = self.schema(version) if version is not None else None
        if version is None or schema is None:
            reference = version.version if version is not None else None
            return FeedbackSnapshot(window, False, 0, 0, {}, quarantined, reference, time.time())
        labels = {c.label for c in schema.classes}
        check = check_rows(labelled_rows(self.store, window), schema, labels, decisions(self.store))
        return FeedbackSnapshot(
            window,
            True,
            check.used,
            len(check.excluded),
            check.counts_by_kind(),
            quarantined,
            version.version,
            time.time(),
        )


class RefreshLoop(threading.Thread):
    """Runs one refresher every `interval_s` seconds until stopped (a daemon thread)."""

    def __init__(
        self, state: ExporterState, source: Source, refresh: Callable[[], Any], interval_s: float
    ) -> None:
        super().__init__(name=f"mlstack-exporter-{source}", daemon=True)
        self.state = state
        self.source = source
        self.refresh = refresh
        self.interval_s = interval_s
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            self.state.run_refresh(self.source, self.refresh)
            self.stopping.wait(self.interval_s)

    def stop(self) -> None:
        self.stopping.set()
