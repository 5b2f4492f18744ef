"""The /metrics collector: yields metric families from the in-memory snapshots, never calling MLflow."""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mlstack_exporter.state import SOURCES, ExporterState

# registry metric name -> the run metric it exports (architecture.md: weighted averages on the test set)
VERSION_GAUGES = {
    "mlops_model_accuracy": ("accuracy", "test-set accuracy of the registered version"),
    "mlops_model_precision": ("precision_weighted", "test-set weighted precision of the registered version"),
    "mlops_model_recall": ("recall_weighted", "test-set weighted recall of the registered version"),
    "mlops_model_f1": ("f1_weighted", "test-set weighted F1 of the registered version"),
}


def _gauge(name: str, doc: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels or [])


class SnapshotCollector(Collector):
    """O(1) in MLflow calls per scrape: the work is proportional to versions and features, not runs."""

    def __init__(self, state: ExporterState) -> None:
        self.state = state

    def describe(self) -> list[Metric]:
        # Names are dynamic per snapshot; an empty describe keeps registration from calling collect().
        return []

    def collect(self) -> Iterator[Metric]:
        now = time.time()
        yield from self._status()
        yield from self._registry(now)
        yield from self._runs()
        yield from self._drift()
        yield from self._accuracy()
        yield from self._feedback()

    def _status(self) -> Iterator[Metric]:
        status = self.state.status_copy()
        last = _gauge(
            "mlops_exporter_last_refresh_timestamp_seconds",
            "last successful refresh per source (0 = never)",
            ["source"],
        )
        errors = CounterMetricFamily("mlops_exporter_refresh_errors", "failed refreshes", labels=["source"])
        duration = _gauge(
            "mlops_exporter_refresh_duration_seconds", "duration of the last refresh", ["source"]
        )
        up = _gauge("mlops_exporter_source_up", "1 when the last refresh of the source succeeded", ["source"])
        for source in SOURCES:
            st = status[source]
            last.add_metric([source], st.last_success or 0.0)
            errors.add_metric([source], float(st.errors_total))
            if st.last_duration_s is not None:
                duration.add_metric([source], st.last_duration_s)
            up.add_metric([source], 1.0 if st.up else 0.0)
        yield from (last, errors, duration, up)

    def _registry(self, now: float) -> Iterator[Metric]:
        snap = self.state.registry
        if snap is None:
            return
        model = snap.model
        for name, (key, doc) in VERSION_GAUGES.items():
            family = _gauge(name, doc, ["model", "version"])
            for info in snap.versions:
                if key in info.metrics:
                    family.add_metric([model, info.version], info.metrics[key])
            yield family
        champion = _gauge("mlops_champion_version", "version behind the champion alias", ["model"])
        challenger = _gauge("mlops_challenger_version", "version behind the challenger alias", ["model"])
        age = _gauge("mlops_champion_age_seconds", "seconds since the champion alias last moved", ["model"])
        if snap.champion is not None:
            champion.add_metric([model], float(snap.champion))
            if snap.champion_since is not None:
                age.add_metric([model], max(0.0, now - snap.champion_since))
        if snap.challenger is not None:
            challenger.add_metric([model], float(snap.challenger))
        yield from (champion, challenger, age)
        yield from self._pipeline()

    def _runs(self) -> Iterator[Metric]:
        snap = self.state.runs
        if snap is None:
            return
        runs = _gauge("mlops_experiment_runs", "active runs per experiment", ["experiment"])
        for experiment, count in sorted(snap.experiment_runs.items()):
            runs.add_metric([experiment], float(count))
        yield runs

    def _pipeline(self) -> Iterator[Metric]:
        snap = self.state.registry
        run = snap.pipeline if snap else None
        info = _gauge("mlops_pipeline_last_run_info", "the last pipeline run (=1)", ["status", "trigger"])
        success = _gauge("mlops_pipeline_last_success", "1 when the last pipeline run succeeded")
        duration = _gauge("mlops_pipeline_last_duration_seconds", "duration of the last pipeline run")
        ended = _gauge("mlops_pipeline_last_run_timestamp_seconds", "end time of the last pipeline run")
        if run is not None:
            info.add_metric([run.status, run.trigger], 1.0)
            success.add_metric([], 1.0 if run.status == "success" else 0.0)
            if run.duration_s is not None:
                duration.add_metric([], run.duration_s)
            if run.ended_at is not None:
                ended.add_metric([], run.ended_at)
        yield from (info, success, duration, ended)

    def _drift(self) -> Iterator[Metric]:
        snap = self.state.drift
        if snap is None:
            return
        window = _gauge("mlops_drift_window_size", "rows in the current drift window")
        window.add_metric([], float(snap.window_rows))
        insufficient = _gauge(
            "mlops_drift_insufficient_data", "1 when the window has fewer rows than exporter.drift_min_rows"
        )
        insufficient.add_metric([], 1.0 if snap.status == "insufficient_data" else 0.0)
        yield from (window, insufficient)
        if snap.reference_version is not None:
            ref = _gauge(
                "mlops_drift_reference_info",
                "the reference the reading is tied to (=1)",
                ["model_version", "reference_hash"],
            )
            ref.add_metric([snap.reference_version, snap.reference_hash or ""], 1.0)
            yield ref
        result = snap.result
        if snap.status != "ok" or result is None:
            return  # no scores rather than misleading ones
        dataset = _gauge(
            "mlops_drift_dataset_drift", "1 when the share of drifted features reaches the threshold"
        )
        dataset.add_metric([], 1.0 if result.dataset_drift else 0.0)
        share = _gauge("mlops_drift_share_drifted_features", "share of drifted features")
        share.add_metric([], result.share_drifted)
        score = _gauge(
            "mlops_drift_feature_score", "per-feature drift score (Evidently)", ["feature", "method"]
        )
        threshold = _gauge(
            "mlops_drift_feature_threshold", "the score's drift threshold", ["feature", "method"]
        )
        drifted = _gauge("mlops_drift_feature_drifted", "1 when the feature drifted", ["feature"])
        for name, col in result.features.items():
            score.add_metric([name, col.method], col.score)
            threshold.add_metric([name, col.method], col.threshold)
            drifted.add_metric([name], 1.0 if col.drifted else 0.0)
        yield from (dataset, share, score, threshold, drifted)
        if result.prediction is not None:
            pred = _gauge(
                "mlops_drift_prediction_score", "drift of the predicted-class distribution", ["method"]
            )
            pred.add_metric([result.prediction.method], result.prediction.score)
            pred_drifted = _gauge(
                "mlops_drift_prediction_drifted", "1 when the predicted-class distribution drifted"
            )
            pred_drifted.add_metric([], 1.0 if result.prediction.drifted else 0.0)
            yield from (pred, pred_drifted)

    def _accuracy(self) -> Iterator[Metric]:
        snap = self.state.accuracy
        if snap is None:
            return
        accuracy = _gauge(
            "mlops_live_accuracy", "rolling accuracy over the last labelled predictions", ["model", "version"]
        )
        labelled = _gauge(
            "mlops_live_labelled_count", "labelled predictions in that window", ["model", "version"]
        )
        for version, acc in sorted(snap.per_version.items()):
            accuracy.add_metric([snap.model, version], acc.accuracy)
            labelled.add_metric([snap.model, version], float(acc.labelled))
        yield from (accuracy, labelled)

    def _feedback(self) -> Iterator[Metric]:
        snap = self.state.feedback
        if snap is None:
            return
        quarantined = _gauge(
            "mlops_feedback_quarantined_rows",
            "labelled predictions the quarantine table excludes from training (pipeline and operators)",
        )
        quarantined.add_metric([], float(snap.quarantined))
        yield quarantined
        if not snap.checked:
            return  # no champion yet: nothing to hold the rows to
        rows = _gauge(
            "mlops_feedback_window_rows",
            "newest labelled predictions (exporter.feedback_window) the next retrain would use or exclude",
            ["status"],
        )
        rows.add_metric(["used"], float(snap.used))
        rows.add_metric(["excluded"], float(snap.excluded))
        by_reason = _gauge(
            "mlops_feedback_window_excluded", "excluded rows of the feedback window, by reason", ["reason"]
        )
        for kind, count in sorted(snap.excluded_by_kind.items()):
            by_reason.add_metric([kind], float(count))
        yield from (rows, by_reason)
        total = snap.used + snap.excluded
        if total:
            share = _gauge("mlops_feedback_excluded_share", "excluded share of the feedback window")
            share.add_metric([], snap.excluded / total)
            yield share
