"""Every alert (rules/alerts.yml), each defined together with the promtool cases that test it.

An alert's threshold comes from `config.monitoring`; its cases are derived from the same values, so a
render with other thresholds still proves each alert fires past its threshold and stays quiet below
it (prometheus/tests/alerts_test.yml).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlstack.config import Config, MonitoringConfig
from mlstack.contract import CT_LABEL, TRIGGER_ACCURACY, TRIGGER_DRIFT
from mlstack.monitoring.names import ERROR_RATIO, SERVICES, SERVING_ROUTE_RE, latency_record
from mlstack.monitoring.promql import duration, num, selector
from mlstack.monitoring.promtool import (
    API,
    EXPORTER,
    MODEL,
    VALUE,
    Case,
    Series,
    const,
    expand,
    fires,
    held,
    minutes,
    promtool_file,
    quiet,
)

RULE_FILE = "alerts.yml"
GROUP = "mlstack-alerts"

# How long a condition must hold before an alert fires, for alerts whose hold time is not a
# config threshold. Drift holds for `monitoring.drift_for_minutes` instead.
TARGET_DOWN_FOR_S = 60
LATENCY_FOR_S = 300
ERROR_RATIO_FOR_S = 300
ACCURACY_FOR_S = 600
CHAMPION_STALE_FOR_S = 3600
EXPORTER_FAILING_FOR_S = 600
EXPORTER_STALE_FOR_S = 60
LOG_REFUSING_FOR_S = 0
FEEDBACK_QUARANTINE_FOR_S = 300


@dataclass(frozen=True)
class AlertSpec:
    """One alerting rule, plus the promtool cases that prove it fires and stays quiet."""

    name: str
    expr: str
    for_s: float
    severity: str
    summary: str
    description: str
    cases: Sequence[Case]
    labels: dict[str, str] = field(default_factory=dict)
    keep_firing_s: float = 0
    runbook: str = ""

    def __post_init__(self) -> None:
        if not any(c.fires for c in self.cases) or all(c.fires for c in self.cases):
            raise ValueError(
                f"alert {self.name} needs a promtool case where it fires and one where it must not"
            )

    def rule(self) -> dict[str, Any]:
        """The rule as it appears in rules/alerts.yml."""
        rule: dict[str, Any] = {"alert": self.name, "expr": self.expr, "for": duration(self.for_s)}
        if self.keep_firing_s:
            rule["keep_firing_for"] = duration(self.keep_firing_s)
        rule["labels"] = {"severity": self.severity, **self.labels}
        rule["annotations"] = self.annotations()
        return rule

    def annotations(self) -> dict[str, str]:
        """Annotation templates (Go templates, expanded by Prometheus)."""
        notes = {"summary": self.summary, "description": self.description}
        if self.runbook:
            notes["runbook"] = self.runbook
        return notes

    def promtool_tests(self) -> list[dict[str, Any]]:
        """This alert's promtool tests: its cases, plus each firing case checked before `for:` elapsed."""
        early = [
            quiet(c.series, max(0, (int(self.for_s // 60) - 1) * 60))
            for c in self.cases
            if c.fires and self.for_s > 0
        ]
        tests = []
        for case in [*self.cases, *early]:
            eval_at = duration(case.eval_s)
            expected = []
            if case.fires:
                labels = {**case.labels, "severity": self.severity, **self.labels}
                expected.append(
                    {
                        "exp_labels": labels,
                        "exp_annotations": {
                            k: expand(v, labels, case.value) for k, v in self.annotations().items()
                        },
                    }
                )
            tests.append(
                {
                    "name": f"{self.name} {'fires' if case.fires else 'stays quiet'} at {eval_at}",
                    "interval": "1m",
                    "input_series": [
                        {"series": selector(metric, labels), "values": values}
                        for metric, labels, values in case.series
                    ],
                    "alert_rule_test": [
                        {"eval_time": eval_at, "alertname": self.name, "exp_alerts": expected}
                    ],
                }
            )
        return tests


def _runbook(anchor: str) -> str:
    return f"docs/observability.md#{anchor}"


# --------------------------------------------------------------------------- the alerts, in order


def target_down(mon: MonitoringConfig) -> AlertSpec:
    """A scrape target is down."""
    services = "|".join(SERVICES)
    return AlertSpec(
        name="TargetDown",
        expr=f'up{{service=~"{services}"}} == 0',
        for_s=TARGET_DOWN_FOR_S,
        severity="critical",
        summary="{{ $labels.service }} is down",
        description="Prometheus cannot scrape {{ $labels.service }} at {{ $labels.instance }}.",
        runbook=_runbook("targetdown"),
        cases=[
            fires([("up", API, const(0, TARGET_DOWN_FOR_S))], API, 0, held(TARGET_DOWN_FOR_S)),
            quiet([("up", API, const(1, TARGET_DOWN_FOR_S))], held(TARGET_DOWN_FOR_S)),
        ],
    )


def predictor_high_p99_latency(mon: MonitoringConfig) -> AlertSpec:
    """Serving routes are slow at the 99th percentile."""
    p99 = latency_record(0.99)
    route = {"route": "/predict", "model_version": "3"}
    slow, fast = max(mon.latency_p99_seconds * 2, 0.001), mon.latency_p99_seconds / 2
    return AlertSpec(
        name="PredictorHighP99Latency",
        expr=f'{p99}{{route=~"{SERVING_ROUTE_RE}"}} > {num(mon.latency_p99_seconds)}',
        for_s=LATENCY_FOR_S,
        severity="warning",
        summary=f"predictor p99 latency above {num(mon.latency_p99_seconds)}s",
        description=(
            "p99 latency of {{ $labels.route }} for model version {{ $labels.model_version }} is "
            f"{VALUE}s (threshold monitoring.latency_p99_seconds = {num(mon.latency_p99_seconds)}s)."
        ),
        runbook=_runbook("predictorhighp99latency"),
        cases=[
            fires([(p99, route, const(slow, LATENCY_FOR_S))], route, slow, held(LATENCY_FOR_S)),
            quiet([(p99, route, const(fast, LATENCY_FOR_S))], held(LATENCY_FOR_S)),
            # /metrics is slow to render under load; only serving routes count.
            quiet([(p99, {**route, "route": "/metrics"}, const(slow, LATENCY_FOR_S))], held(LATENCY_FOR_S)),
        ],
    )


def predictor_high_error_ratio(mon: MonitoringConfig) -> AlertSpec:
    """Too many 5xx answers for one model version."""
    version = {"model_version": "3"}
    err_hi = min(1.0, max(mon.error_ratio * 2, 0.01))
    return AlertSpec(
        name="PredictorHighErrorRatio",
        expr=f"{ERROR_RATIO} > {num(mon.error_ratio)}",
        for_s=ERROR_RATIO_FOR_S,
        severity="critical",
        summary=f"predictor 5xx ratio above {num(mon.error_ratio)}",
        description=(
            f"{VALUE} of requests to model version {{{{ $labels.model_version }}}} answer 5xx "
            f"(threshold monitoring.error_ratio = {num(mon.error_ratio)})."
        ),
        runbook=_runbook("predictorhigherrorratio"),
        cases=[
            fires(
                [(ERROR_RATIO, version, const(err_hi, ERROR_RATIO_FOR_S))],
                version,
                err_hi,
                held(ERROR_RATIO_FOR_S),
            ),
            quiet(
                [(ERROR_RATIO, version, const(mon.error_ratio / 2, ERROR_RATIO_FOR_S))],
                held(ERROR_RATIO_FOR_S),
            ),
        ],
    )


def data_drift_detected(mon: MonitoringConfig) -> AlertSpec:
    """Dataset drift over the threshold, on enough rows: requests a retrain (CT)."""
    hold = mon.drift_for_minutes * 60
    drift_hi = min(1.0, mon.drift_share_threshold + (1 - mon.drift_share_threshold) / 2)

    def series(share: float, insufficient: int) -> list[Series]:
        return [
            ("mlops_drift_share_drifted_features", EXPORTER, const(share, hold)),
            ("mlops_drift_insufficient_data", EXPORTER, const(insufficient, hold)),
        ]

    return AlertSpec(
        name="DataDriftDetected",
        expr=(
            f"mlops_drift_share_drifted_features >= {num(mon.drift_share_threshold)} "
            "unless on (service) (mlops_drift_insufficient_data == 1)"
        ),
        for_s=hold,
        keep_firing_s=mon.ct_keep_firing_minutes * 60,
        severity="warning",
        labels={CT_LABEL: TRIGGER_DRIFT},
        summary="dataset drift: retrain requested",
        description=(
            f"{VALUE} of the features drifted from the champion's reference for "
            f"{duration(hold)} (threshold monitoring.drift_share_threshold = "
            f"{num(mon.drift_share_threshold)})."
        ),
        runbook=_runbook("datadriftdetected"),
        cases=[
            fires(series(drift_hi, 0), EXPORTER, drift_hi, held(hold)),
            # Too few rows in the window: the reading is not trusted.
            quiet(series(drift_hi, 1), held(hold)),
        ],
    )


def live_accuracy_below_floor(mon: MonitoringConfig) -> AlertSpec:
    """The champion's accuracy on labelled live traffic is under the floor: requests a retrain (CT)."""
    acc_lo = mon.accuracy_floor / 2
    n_ok = mon.accuracy_min_labelled

    def series(acc: float, labelled: int) -> list[Series]:
        return [
            ("mlops_live_accuracy", {**EXPORTER, **MODEL}, const(acc, ACCURACY_FOR_S)),
            ("mlops_live_labelled_count", {**EXPORTER, **MODEL}, const(labelled, ACCURACY_FOR_S)),
            ("mlops_model_info", {**API, **MODEL, "alias": "champion"}, const(1, ACCURACY_FOR_S)),
        ]

    return AlertSpec(
        name="LiveAccuracyBelowFloor",
        expr=(
            f"mlops_live_accuracy < {num(mon.accuracy_floor)} "
            f"and on (model, version) (mlops_live_labelled_count >= {num(mon.accuracy_min_labelled)}) "
            "and on (model, version) mlops_model_info"
        ),
        for_s=ACCURACY_FOR_S,
        keep_firing_s=mon.ct_keep_firing_minutes * 60,
        severity="warning",
        labels={CT_LABEL: TRIGGER_ACCURACY},
        summary="live accuracy below floor: retrain requested",
        description=(
            f"Live accuracy of {{{{ $labels.model }}}} v{{{{ $labels.version }}}} is {VALUE} "
            f"over at least {num(mon.accuracy_min_labelled)} labelled predictions "
            f"(floor monitoring.accuracy_floor = {num(mon.accuracy_floor)})."
        ),
        runbook=_runbook("liveaccuracybelowfloor"),
        cases=[
            fires(series(acc_lo, n_ok), {**EXPORTER, **MODEL}, acc_lo, held(ACCURACY_FOR_S)),
            # Below the floor but on too few labels.
            quiet(series(acc_lo, max(n_ok - 1, 0)), held(ACCURACY_FOR_S)),
            quiet(series(min(1.0, mon.accuracy_floor + 0.01), n_ok), held(ACCURACY_FOR_S)),
        ],
    )


def champion_stale(mon: MonitoringConfig) -> AlertSpec:
    """The champion alias has not moved for longer than the configured age."""
    model = EXPORTER | {"model": MODEL["model"]}
    age_days = mon.champion_max_age_days * 2

    def series(days: float) -> list[Series]:
        return [("mlops_champion_age_seconds", model, const(days * 86400, CHAMPION_STALE_FOR_S))]

    return AlertSpec(
        name="ChampionStale",
        expr=f"mlops_champion_age_seconds / 86400 > {num(mon.champion_max_age_days)}",
        for_s=CHAMPION_STALE_FOR_S,
        severity="info",
        summary=f"champion older than {num(mon.champion_max_age_days)} days",
        description=(
            f"The champion alias of {{{{ $labels.model }}}} has not moved for {VALUE} days "
            f"(monitoring.champion_max_age_days = {num(mon.champion_max_age_days)})."
        ),
        runbook=_runbook("championstale"),
        cases=[
            fires(series(age_days), model, age_days, held(CHAMPION_STALE_FOR_S)),
            quiet(series(mon.champion_max_age_days / 2), held(CHAMPION_STALE_FOR_S)),
        ],
    )


def exporter_refresh_failing(mon: MonitoringConfig) -> AlertSpec:
    """One of the exporter's refreshers keeps failing."""
    source = EXPORTER | {"source": "drift"}
    window = EXPORTER_FAILING_FOR_S + 300
    return AlertSpec(
        name="ExporterRefreshFailing",
        expr="rate(mlops_exporter_refresh_errors_total[5m]) > 0",
        for_s=EXPORTER_FAILING_FOR_S,
        severity="warning",
        summary="exporter cannot refresh {{ $labels.source }}",
        description=(
            "The exporter's {{ $labels.source }} refresh has been failing for "
            f"{duration(EXPORTER_FAILING_FOR_S)}."
        ),
        runbook=_runbook("exporterrefreshfailing"),
        cases=[
            # One error per second, sustained.
            fires(
                [("mlops_exporter_refresh_errors_total", source, f"0+60x{minutes(window)}")],
                source,
                1.0,
                held(window),
            ),
            # One error long ago, then none.
            quiet([("mlops_exporter_refresh_errors_total", source, f"0 1x{minutes(window)}")], held(window)),
        ],
    )


def exporter_stale(mon: MonitoringConfig) -> AlertSpec:
    """A refresher has not succeeded for longer than the configured age (or ever, once started)."""
    stale_s = mon.exporter_stale_seconds
    hold = stale_s + EXPORTER_STALE_FOR_S
    source = EXPORTER | {"source": "registry"}

    def series(refreshed: str, started: float) -> list[Series]:
        if "x" not in refreshed:
            refreshed = const(float(refreshed), hold)
        return [
            ("mlops_exporter_last_refresh_timestamp_seconds", source, refreshed),
            ("process_start_time_seconds", EXPORTER, const(started, hold)),
        ]

    return AlertSpec(
        name="ExporterStale",
        # A source that never refreshed reads 0; the uptime guard gives a fresh exporter time to start.
        expr=(
            f"time() - mlops_exporter_last_refresh_timestamp_seconds > {num(stale_s)} "
            f"and on (service) (time() - process_start_time_seconds > {num(stale_s)})"
        ),
        for_s=EXPORTER_STALE_FOR_S,
        severity="warning",
        summary="exporter {{ $labels.source }} readings are stale",
        description=(
            f"The last successful {{{{ $labels.source }}}} refresh was {VALUE}s ago, or never "
            f"(monitoring.exporter_stale_seconds = {num(stale_s)})."
        ),
        runbook=_runbook("exporterstale"),
        cases=[
            # Refreshed at t=0, then stuck; the exporter has run since t=0.
            fires(series("0", 0), source, held(hold), held(hold)),
            # Refreshed every minute.
            quiet(series(f"0+60x{minutes(hold)}", 0), held(hold)),
            # Never refreshed (0), but the exporter started only half the threshold ago.
            quiet(series("0", held(hold) - stale_s / 2), held(hold)),
        ],
    )


def prediction_log_refusing(mon: MonitoringConfig) -> AlertSpec:
    """The predictor refused predictions (503) because the prediction log could not store them."""
    refused = API | {"reason": "store_unavailable"}
    return AlertSpec(
        name="PredictionLogRefusing",
        expr="increase(mlops_prediction_log_refused_total[5m]) > 0",
        for_s=LOG_REFUSING_FOR_S,
        severity="warning",
        summary="the prediction log cannot store predictions, they get 503 ({{ $labels.reason }})",
        description=(
            f"{VALUE} predictions were refused with 503 in 5 minutes because the prediction store "
            "could not commit them (reason {{ $labels.reason }}); clients must retry."
        ),
        runbook=_runbook("predictionlogrefusing"),
        cases=[
            fires([("mlops_prediction_log_refused_total", refused, "0+60x10")], refused, 300.0, 600),
            quiet([("mlops_prediction_log_refused_total", API | {"reason": "full"}, "7x10")], 600),
        ],
    )


def feedback_quarantine_high(mon: MonitoringConfig) -> AlertSpec:
    """Too much of the newest feedback fails validation: a broken client or labelling batch."""
    threshold, needed = mon.feedback_excluded_share, mon.feedback_min_labelled
    share_hi = threshold + (1 - threshold) / 2
    hold = FEEDBACK_QUARANTINE_FOR_S

    def series(share: float, used: int, excluded: int) -> list[Series]:
        return [
            ("mlops_feedback_excluded_share", EXPORTER, const(share, hold)),
            ("mlops_feedback_window_rows", {**EXPORTER, "status": "used"}, const(used, hold)),
            ("mlops_feedback_window_rows", {**EXPORTER, "status": "excluded"}, const(excluded, hold)),
        ]

    return AlertSpec(
        name="FeedbackQuarantineHigh",
        expr=(
            f"mlops_feedback_excluded_share > {num(threshold)} "
            f"and on (service) (sum by (service) (mlops_feedback_window_rows) >= {num(needed)})"
        ),
        for_s=hold,
        severity="warning",
        summary="labelled feedback fails validation: rows are quarantined",
        description=(
            f"{VALUE} of the newest labelled predictions fail validation and are left out of training "
            f"(threshold monitoring.feedback_excluded_share = {num(threshold)}); a client or labelling "
            "batch sends broken data. `mlstack feedback list` shows them."
        ),
        runbook=_runbook("feedbackquarantinehigh"),
        cases=[
            fires(series(share_hi, needed, needed), EXPORTER, share_hi, held(hold)),
            # A high share of too few labels: one bad row is not a broken client.
            quiet(series(share_hi, 0, needed - 1), held(hold)),
            quiet(series(threshold / 2, needed, needed), held(hold)),
        ],
    )


ALERTS: tuple[Callable[[MonitoringConfig], AlertSpec], ...] = (
    target_down,
    predictor_high_p99_latency,
    predictor_high_error_ratio,
    data_drift_detected,
    live_accuracy_below_floor,
    champion_stale,
    exporter_refresh_failing,
    exporter_stale,
    prediction_log_refusing,
    feedback_quarantine_high,
)


def alert_specs(config: Config) -> list[AlertSpec]:
    """Every alert, its threshold taken from `config.monitoring`."""
    return [build(config.monitoring) for build in ALERTS]


def alert_rules(config: Config) -> dict[str, Any]:
    """rules/alerts.yml."""
    return {"groups": [{"name": GROUP, "rules": [a.rule() for a in alert_specs(config)]}]}


def alert_tests(config: Config) -> dict[str, Any]:
    """prometheus/tests/alerts_test.yml: every alert's cases, in alert order."""
    return promtool_file(RULE_FILE, [test for spec in alert_specs(config) for test in spec.promtool_tests()])
