"""Render Prometheus, its rules, their promtool unit tests and Alertmanager from the config.

Every threshold comes from `config.monitoring` (mlstack.yaml); the committed files under
`prometheus/` and `alertmanager/` are the `compose` render, and a test keeps them equal to a fresh one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from mlstack.config import Config, load_config

Target = Literal["compose", "local"]
TARGETS: tuple[Target, ...] = ("compose", "local")

# Scrape jobs, in order; each job's name is also its `service` label (docs/metrics.md).
SERVICES: tuple[str, ...] = ("api", "exporter", "mlflow", "alertmanager", "prometheus")
COMPOSE_TARGETS: dict[str, str] = {
    "api": "api:7654",
    "exporter": "exporter:8000",
    "mlflow": "mlflow:5000",
    "alertmanager": "alertmanager:9093",
    "prometheus": "prometheus:9090",
}
COMPOSE_WEBHOOK_URL = "http://jenkins:8080/generic-webhook-trigger/invoke"
# Docker secret holding MLSTACK_WEBHOOK_TOKEN inside the alertmanager container.
COMPOSE_TOKEN_FILE = "/run/secrets/mlstack_webhook_token"  # noqa: S105 - a path, not a secret
TOKEN_ENV = "MLSTACK_WEBHOOK_TOKEN"  # noqa: S105 - an env var name
WEBHOOK_URL_ENV = "MLSTACK_WEBHOOK_URL"
LOCAL_TOKEN_FILENAME = "webhook_token"  # noqa: S105 - a file name

# Recording-rule names: the alerts and the Grafana dashboards use these, never the raw expressions.
LATENCY_QUANTILES: tuple[float, ...] = (0.5, 0.9, 0.99)
REQUEST_RATE = "route_model_version:mlops_http_requests:rate"
VERSION_REQUEST_RATE = "model_version:mlops_http_requests:rate"
ERROR_RATIO = "model_version:mlops_http_errors:ratio_rate"
CLIENT_ERROR_RATIO = "model_version:mlops_http_client_errors:ratio_rate"
PREDICTION_RATE = "model_version_predicted_class:mlops_predictions:rate"
BATCH_QUANTILES: tuple[float, ...] = (0.5, 0.99)
# The routes whose latency is alerted on (inference, not /metrics or health probes).
SERVING_ROUTE_RE = ".*predict.*"

# Routing: alerts carrying `ct_trigger` go to the retrain webhook, the rest to a null receiver.
CT_LABEL = "ct_trigger"
RETRAIN_RECEIVER = "retrain-webhook"
DEFAULT_RECEIVER = "default"

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
# A CT alert keeps firing this long after its condition clears, so a flapping signal stays one alert.
CT_KEEP_FIRING_S = 600

VALUE = '{{ $value | printf "%.3g" }}'
PROMTOOL_TEST_FILES = ("alerts_test.yml", "recording_test.yml")


def num(value: float) -> str:
    """A threshold as PromQL and people read it: 30, 0.1, 1e-06."""
    short = f"{value:g}"
    return short if float(short) == value else repr(value)


def latency_record(quantile: float) -> str:
    """Recording-rule name of a predictor latency quantile, per route and model version."""
    return f"route_model_version:mlops_http_request_duration_seconds:p{round(quantile * 100)}"


def batch_record(quantile: float) -> str:
    """Recording-rule name of a `/predict` batch-size quantile, per model version."""
    return f"model_version:mlops_prediction_batch_size:p{round(quantile * 100)}"


def duration(seconds: float) -> str:
    """A Prometheus/Alertmanager duration string: 0s, 90s, 5m, 2h."""
    total_ms = round(seconds * 1000)
    if total_ms % 1000:
        return f"{total_ms}ms"
    whole = total_ms // 1000
    for unit, size in (("h", 3600), ("m", 60)):
        if whole and whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"


def rate_window_s(config: Config) -> int:
    """The range of rate() windows: at least 1m and four scrapes, so a missed scrape leaves no gap."""
    return max(60, 4 * config.monitoring.scrape_interval_s)


@dataclass(frozen=True)
class Endpoints:
    """Where Prometheus scrapes and where Alertmanager sends the CT webhook, for one target."""

    targets: Mapping[str, str]
    webhook_url: str
    # Path as Alertmanager reads it; None sends no Authorization header.
    token_file: str | None


@dataclass(frozen=True)
class RenderedMonitoring:
    """Paths of the files one render wrote."""

    prometheus_config: Path
    recording_rules: Path
    alert_rules: Path
    alertmanager_config: Path
    promtool_tests: tuple[Path, ...]
    token_file: Path | None = None

    @property
    def all(self) -> list[Path]:
        """Every file written, config files first."""
        extra = [self.token_file] if self.token_file else []
        return [
            self.prometheus_config,
            self.recording_rules,
            self.alert_rules,
            self.alertmanager_config,
            *self.promtool_tests,
            *extra,
        ]


# --------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class AlertSpec:
    """One alerting rule, plus the promtool cases that prove it fires and stays quiet."""

    name: str
    expr: str
    for_s: float
    severity: str
    summary: str
    description: str
    labels: dict[str, str] = field(default_factory=dict)
    keep_firing_s: float = 0
    runbook: str = ""

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


def _runbook(anchor: str) -> str:
    return f"docs/observability.md#{anchor}"


def alert_specs(config: Config) -> list[AlertSpec]:
    """Every alert, its threshold taken from `config.monitoring`."""
    mon = config.monitoring
    p99 = latency_record(0.99)
    services = "|".join(SERVICES)
    return [
        AlertSpec(
            name="TargetDown",
            expr=f'up{{service=~"{services}"}} == 0',
            for_s=TARGET_DOWN_FOR_S,
            severity="critical",
            summary="{{ $labels.service }} is down",
            description="Prometheus cannot scrape {{ $labels.service }} at {{ $labels.instance }}.",
            runbook=_runbook("targetdown"),
        ),
        AlertSpec(
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
        ),
        AlertSpec(
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
        ),
        AlertSpec(
            name="DataDriftDetected",
            expr=(
                f"mlops_drift_share_drifted_features >= {num(mon.drift_share_threshold)} "
                "unless on (service) (mlops_drift_insufficient_data == 1)"
            ),
            for_s=mon.drift_for_minutes * 60,
            keep_firing_s=CT_KEEP_FIRING_S,
            severity="warning",
            labels={CT_LABEL: "drift"},
            summary="dataset drift: retrain requested",
            description=(
                f"{VALUE} of the features drifted from the champion's reference for "
                f"{duration(mon.drift_for_minutes * 60)} (threshold monitoring.drift_share_threshold = "
                f"{num(mon.drift_share_threshold)})."
            ),
            runbook=_runbook("datadriftdetected"),
        ),
        AlertSpec(
            name="LiveAccuracyBelowFloor",
            expr=(
                f"mlops_live_accuracy < {num(mon.accuracy_floor)} "
                f"and on (model, version) (mlops_live_labelled_count >= {num(mon.accuracy_min_labelled)}) "
                "and on (model, version) mlops_model_info"
            ),
            for_s=ACCURACY_FOR_S,
            keep_firing_s=CT_KEEP_FIRING_S,
            severity="warning",
            labels={CT_LABEL: "accuracy"},
            summary="live accuracy below floor: retrain requested",
            description=(
                f"Live accuracy of {{{{ $labels.model }}}} v{{{{ $labels.version }}}} is {VALUE} "
                f"over at least {num(mon.accuracy_min_labelled)} labelled predictions "
                f"(floor monitoring.accuracy_floor = {num(mon.accuracy_floor)})."
            ),
            runbook=_runbook("liveaccuracybelowfloor"),
        ),
        AlertSpec(
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
        ),
        AlertSpec(
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
        ),
        AlertSpec(
            name="ExporterStale",
            # A source that never refreshed reads 0; the uptime guard gives a fresh exporter time to start.
            expr=(
                f"time() - mlops_exporter_last_refresh_timestamp_seconds > {num(mon.exporter_stale_seconds)} "
                f"and on (service) (time() - process_start_time_seconds > {num(mon.exporter_stale_seconds)})"
            ),
            for_s=EXPORTER_STALE_FOR_S,
            severity="warning",
            summary="exporter {{ $labels.source }} readings are stale",
            description=(
                f"The last successful {{{{ $labels.source }}}} refresh was {VALUE}s ago, or never "
                f"(monitoring.exporter_stale_seconds = {num(mon.exporter_stale_seconds)})."
            ),
            runbook=_runbook("exporterstale"),
        ),
        AlertSpec(
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
        ),
    ]


def recording_rules(config: Config) -> dict[str, Any]:
    """rules/recording.yml: predictor latency quantiles, rates and error ratios."""
    window = duration(rate_window_s(config))

    def rate(selector: str, by: str) -> str:
        return f"sum by ({by}) (rate({selector}[{window}]))"

    def share(numerator: str) -> str:
        # `or ... * 0` keeps a 0 series for versions with no such responses instead of no series.
        return f"({numerator} or {VERSION_REQUEST_RATE} * 0) / {VERSION_REQUEST_RATE}"

    rules: list[dict[str, str]] = [
        {
            "record": latency_record(q),
            "expr": f"histogram_quantile({q}, "
            f"{rate('mlops_http_request_duration_seconds_bucket', 'le, route, model_version')})",
        }
        for q in LATENCY_QUANTILES
    ]
    rules += [
        {"record": REQUEST_RATE, "expr": rate("mlops_http_requests_total", "route, model_version")},
        {"record": VERSION_REQUEST_RATE, "expr": rate("mlops_http_requests_total", "model_version")},
        {
            "record": ERROR_RATIO,
            "expr": share(rate('mlops_http_requests_total{status=~"5.."}', "model_version")),
        },
        {
            "record": CLIENT_ERROR_RATIO,
            "expr": share(rate('mlops_http_requests_total{status=~"4.."}', "model_version")),
        },
        {
            "record": PREDICTION_RATE,
            "expr": rate("mlops_predictions_total", "model_version, predicted_class"),
        },
    ]
    rules += [
        {
            "record": batch_record(q),
            "expr": f"histogram_quantile({q}, "
            f"{rate('mlops_prediction_batch_size_bucket', 'le, model_version')})",
        }
        for q in BATCH_QUANTILES
    ]
    return {"groups": [{"name": "mlstack-predictor", "rules": rules}]}


def alert_rules(config: Config) -> dict[str, Any]:
    """rules/alerts.yml."""
    return {"groups": [{"name": "mlstack-alerts", "rules": [a.rule() for a in alert_specs(config)]}]}


# --------------------------------------------------------------------------- configs


def endpoints(
    config: Config,
    target: Target,
    *,
    targets: Mapping[str, str] | None = None,
    webhook_url: str | None = None,
    token_file: str | None = None,
) -> Endpoints:
    """The scrape targets and webhook of `target`, with optional overrides (tests, custom ports)."""
    if target == "compose":
        base = dict(COMPOSE_TARGETS)
        url = COMPOSE_WEBHOOK_URL
        default_token_file: str | None = COMPOSE_TOKEN_FILE
    elif target == "local":
        svc = config.services
        ports = {
            "api": svc.api_port,
            "exporter": svc.exporter_port,
            "mlflow": svc.mlflow_port,
            "alertmanager": svc.alertmanager_port,
            "prometheus": svc.prometheus_port,
        }
        base = {name: f"127.0.0.1:{port}" for name, port in ports.items()}
        url = f"http://127.0.0.1:{svc.trigger_port}/alertmanager"
        default_token_file = None
    else:
        raise ValueError(f"unknown monitoring target {target!r}; use one of {', '.join(TARGETS)}")
    unknown = sorted(set(targets or {}) - set(SERVICES))
    if unknown:
        raise ValueError(f"unknown service(s) {unknown} in target overrides; known: {list(SERVICES)}")
    base.update(targets or {})
    return Endpoints(
        targets=base, webhook_url=webhook_url or url, token_file=token_file or default_token_file
    )


def prometheus_config(config: Config, ends: Endpoints) -> dict[str, Any]:
    """prometheus.yml: one job per service, relabelled with `service`, alerting, rule files."""
    interval = config.monitoring.scrape_interval_s
    jobs = [
        {
            "job_name": name,
            "metrics_path": "/metrics",
            "static_configs": [{"targets": [ends.targets[name]]}],
            "relabel_configs": [{"target_label": "service", "replacement": name}],
        }
        for name in SERVICES
    ]
    return {
        "global": {
            "scrape_interval": duration(interval),
            "scrape_timeout": duration(min(10, interval)),
            "evaluation_interval": duration(interval),
        },
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [ends.targets["alertmanager"]]}]}]},
        "rule_files": ["rules/recording.yml", "rules/alerts.yml"],
        "scrape_configs": jobs,
    }


def alertmanager_config(config: Config, ends: Endpoints) -> dict[str, Any]:
    """alertmanager.yml: CT alerts to the retrain webhook, the rest to a null receiver.

    Against a retrain storm: CT alerts are grouped by `ct_trigger` alone (every drifting feature or
    version makes one notification), a new alert joins a notified group only after `group_interval`
    (at least the CT cooldown), a still-firing group is re-sent after `repeat_interval` (a day), and
    resolutions are not sent. The rules add `for:` and `keep_firing_for:`; the trigger enforces
    `ct.cooldown_s` and new-data requirements on its side.
    """
    webhook: dict[str, Any] = {"url": ends.webhook_url, "send_resolved": False, "max_alerts": 10}
    if ends.token_file:
        webhook["http_config"] = {"authorization": {"type": "Bearer", "credentials_file": ends.token_file}}
    ct_interval = max(300.0, config.ct.cooldown_s)
    return {
        "global": {"resolve_timeout": "5m"},
        "route": {
            "receiver": DEFAULT_RECEIVER,
            "group_by": ["alertname", "service"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
            "routes": [
                {
                    "receiver": RETRAIN_RECEIVER,
                    "matchers": [f'{CT_LABEL}=~".+"'],
                    "group_by": [CT_LABEL],
                    "group_wait": "30s",
                    "group_interval": duration(ct_interval),
                    "repeat_interval": "24h",
                }
            ],
        },
        "receivers": [
            {"name": DEFAULT_RECEIVER},
            {"name": RETRAIN_RECEIVER, "webhook_configs": [webhook]},
        ],
    }


# --------------------------------------------------------------------------- promtool unit tests


def _series(name: str, labels: Mapping[str, str]) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return f"{name}{{{inner}}}"


def _expand(template: str, labels: Mapping[str, str], value: float) -> str:
    """Expand an annotation template the way Prometheus does, for the few constructs used here."""
    text = template.replace(VALUE, f"{value:.3g}")
    return re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels.get(m.group(1), ""), text)


@dataclass(frozen=True)
class _Case:
    """Input series for one alert; `labels`/`value` describe the alert when it must fire."""

    series: list[tuple[str, Mapping[str, str], str]]
    fires: bool
    labels: Mapping[str, str] = field(default_factory=dict)
    value: float = 0.0
    eval_s: float = 0


def _cases(config: Config) -> dict[str, list[_Case]]:
    """For every alert: at least one case where it fires and one where it must not."""
    mon = config.monitoring
    api = {"service": "api", "instance": "api:7654"}
    exporter = {"service": "exporter"}
    model = {"model": "wine-classifier", "version": "3"}
    drift_hold = mon.drift_for_minutes * 60
    p99 = latency_record(0.99)
    route = {"route": "/predict", "model_version": "3"}

    def minutes(seconds: float) -> int:
        """Sample count (1m apart) covering `seconds` plus margin."""
        return int(seconds // 60) + 12

    def held(seconds: float) -> float:
        """An evaluation time past a `for:` of `seconds`, on the 1m grid."""
        return (int(seconds // 60) + 2) * 60

    def const(value: float, seconds: float) -> str:
        return f"{value!r}x{minutes(seconds)}"

    slow, fast = max(mon.latency_p99_seconds * 2, 0.001), mon.latency_p99_seconds / 2
    err_hi = min(1.0, max(mon.error_ratio * 2, 0.01))
    drift_hi = min(1.0, mon.drift_share_threshold + (1 - mon.drift_share_threshold) / 2)
    acc_lo = mon.accuracy_floor / 2
    age_days = mon.champion_max_age_days * 2
    n_ok = mon.accuracy_min_labelled
    stale_s = mon.exporter_stale_seconds

    stale_hold = stale_s + EXPORTER_STALE_FOR_S

    def stale_series(refreshed: str, started: float) -> list[tuple[str, Mapping[str, str], str]]:
        if "x" not in refreshed:
            refreshed = const(float(refreshed), stale_hold)
        return [
            ("mlops_exporter_last_refresh_timestamp_seconds", exporter | {"source": "registry"}, refreshed),
            ("process_start_time_seconds", exporter, const(started, stale_hold)),
        ]

    def drift_series(share: float, insufficient: int) -> list[tuple[str, Mapping[str, str], str]]:
        return [
            ("mlops_drift_share_drifted_features", exporter, const(share, drift_hold)),
            ("mlops_drift_insufficient_data", exporter, const(insufficient, drift_hold)),
        ]

    def accuracy_series(acc: float, labelled: int) -> list[tuple[str, Mapping[str, str], str]]:
        return [
            ("mlops_live_accuracy", {**exporter, **model}, const(acc, ACCURACY_FOR_S)),
            ("mlops_live_labelled_count", {**exporter, **model}, const(labelled, ACCURACY_FOR_S)),
            ("mlops_model_info", {**api, **model, "alias": "champion"}, const(1, ACCURACY_FOR_S)),
        ]

    cases: dict[str, list[_Case]] = {
        "TargetDown": [
            _Case([("up", api, const(0, TARGET_DOWN_FOR_S))], True, api, 0, held(TARGET_DOWN_FOR_S)),
            _Case([("up", api, const(1, TARGET_DOWN_FOR_S))], False, eval_s=held(TARGET_DOWN_FOR_S)),
        ],
        "PredictorHighP99Latency": [
            _Case([(p99, route, const(slow, LATENCY_FOR_S))], True, route, slow, held(LATENCY_FOR_S)),
            _Case([(p99, route, const(fast, LATENCY_FOR_S))], False, eval_s=held(LATENCY_FOR_S)),
            # /metrics is slow to render under load; only serving routes count.
            _Case(
                [(p99, {**route, "route": "/metrics"}, const(slow, LATENCY_FOR_S))],
                False,
                eval_s=held(LATENCY_FOR_S),
            ),
        ],
        "PredictorHighErrorRatio": [
            _Case(
                [(ERROR_RATIO, {"model_version": "3"}, const(err_hi, ERROR_RATIO_FOR_S))],
                True,
                {"model_version": "3"},
                err_hi,
                held(ERROR_RATIO_FOR_S),
            ),
            _Case(
                [(ERROR_RATIO, {"model_version": "3"}, const(mon.error_ratio / 2, ERROR_RATIO_FOR_S))],
                False,
                eval_s=held(ERROR_RATIO_FOR_S),
            ),
        ],
        "DataDriftDetected": [
            _Case(drift_series(drift_hi, 0), True, exporter, drift_hi, held(drift_hold)),
            # Too few rows in the window: the reading is not trusted.
            _Case(drift_series(drift_hi, 1), False, eval_s=held(drift_hold)),
        ],
        "LiveAccuracyBelowFloor": [
            _Case(accuracy_series(acc_lo, n_ok), True, {**exporter, **model}, acc_lo, held(ACCURACY_FOR_S)),
            # Below the floor but on too few labels.
            _Case(accuracy_series(acc_lo, max(n_ok - 1, 0)), False, eval_s=held(ACCURACY_FOR_S)),
            _Case(
                accuracy_series(min(1.0, mon.accuracy_floor + 0.01), n_ok), False, eval_s=held(ACCURACY_FOR_S)
            ),
        ],
        "ChampionStale": [
            _Case(
                [
                    (
                        "mlops_champion_age_seconds",
                        exporter | {"model": "wine-classifier"},
                        const(age_days * 86400, CHAMPION_STALE_FOR_S),
                    )
                ],
                True,
                exporter | {"model": "wine-classifier"},
                age_days,
                held(CHAMPION_STALE_FOR_S),
            ),
            _Case(
                [
                    (
                        "mlops_champion_age_seconds",
                        exporter | {"model": "wine-classifier"},
                        const(mon.champion_max_age_days * 86400 / 2, CHAMPION_STALE_FOR_S),
                    )
                ],
                False,
                eval_s=held(CHAMPION_STALE_FOR_S),
            ),
        ],
        "ExporterRefreshFailing": [
            # One error per second, sustained.
            _Case(
                [
                    (
                        "mlops_exporter_refresh_errors_total",
                        exporter | {"source": "drift"},
                        f"0+60x{minutes(EXPORTER_FAILING_FOR_S + 300)}",
                    )
                ],
                True,
                exporter | {"source": "drift"},
                1.0,
                held(EXPORTER_FAILING_FOR_S + 300),
            ),
            # One error long ago, then none.
            _Case(
                [
                    (
                        "mlops_exporter_refresh_errors_total",
                        exporter | {"source": "drift"},
                        f"0 1x{minutes(EXPORTER_FAILING_FOR_S + 300)}",
                    )
                ],
                False,
                eval_s=held(EXPORTER_FAILING_FOR_S + 300),
            ),
        ],
        "ExporterStale": [
            # Refreshed at t=0, then stuck; the exporter has run since t=0.
            _Case(
                stale_series("0", 0),
                True,
                exporter | {"source": "registry"},
                held(stale_hold),
                held(stale_hold),
            ),
            # Refreshed every minute.
            _Case(stale_series(f"0+60x{minutes(stale_hold)}", 0), False, eval_s=held(stale_hold)),
            # Never refreshed (0), but the exporter started only half the threshold ago.
            _Case(stale_series("0", held(stale_hold) - stale_s / 2), False, eval_s=held(stale_hold)),
        ],
        "PredictionLogRefusing": [
            _Case(
                [("mlops_prediction_log_refused_total", api | {"reason": "store_unavailable"}, "0+60x10")],
                True,
                api | {"reason": "store_unavailable"},
                300.0,
                600,
            ),
            _Case(
                [("mlops_prediction_log_refused_total", api | {"reason": "full"}, "7x10")], False, eval_s=600
            ),
        ],
    }
    return cases


def alert_tests(config: Config) -> dict[str, Any]:
    """prometheus/tests/alerts_test.yml: a firing and a must-not-fire case per alert."""
    specs = {a.name: a for a in alert_specs(config)}
    cases = _cases(config)
    missing = sorted(set(specs) - set(cases))
    if missing:
        raise ValueError(f"alerts without promtool cases: {missing}")
    tests = []
    for name, spec in specs.items():
        # A firing case evaluated before its `for:` has elapsed must stay quiet (pending).
        early = [
            _Case(c.series, False, eval_s=max(0, (int(spec.for_s // 60) - 1) * 60))
            for c in cases[name]
            if c.fires and spec.for_s > 0
        ]
        for case in cases[name] + early:
            expected = []
            if case.fires:
                labels = {**case.labels, "severity": spec.severity, **spec.labels}
                expected.append(
                    {
                        "exp_labels": labels,
                        "exp_annotations": {
                            k: _expand(v, labels, case.value) for k, v in spec.annotations().items()
                        },
                    }
                )
            tests.append(
                {
                    "name": f"{name} {'fires' if case.fires else 'stays quiet'} at {duration(case.eval_s)}",
                    "interval": "1m",
                    "input_series": [
                        {"series": _series(metric, labels), "values": values}
                        for metric, labels, values in case.series
                    ],
                    "alert_rule_test": [
                        {"eval_time": duration(case.eval_s), "alertname": name, "exp_alerts": expected}
                    ],
                }
            )
    return {"rule_files": ["../rules/alerts.yml"], "evaluation_interval": "1m", "tests": tests}


def recording_tests(config: Config) -> dict[str, Any]:
    """prometheus/tests/recording_test.yml: the recording rules compute what their names say."""
    n = rate_window_s(config) // 60 + 10
    eval_at = duration((n - 2) * 60)
    req = {"route": "/predict", "method": "POST", "model_version": "3"}
    buckets = [("0.25", "0"), ("0.5", "60"), ("+Inf", "60")]
    inputs = [
        # model version 3: 54 OK + 6 server errors + 0 client errors a minute (1 request/s).
        (_series("mlops_http_requests_total", {**req, "status": "200"}), f"0+54x{n}"),
        (_series("mlops_http_requests_total", {**req, "status": "500"}), f"0+6x{n}"),
        # model version 4: only successes and client errors.
        (_series("mlops_http_requests_total", {**req, "model_version": "4", "status": "200"}), f"0+45x{n}"),
        (_series("mlops_http_requests_total", {**req, "model_version": "4", "status": "422"}), f"0+15x{n}"),
        *[
            (
                _series("mlops_http_request_duration_seconds_bucket", {**req, "status": "200", "le": le}),
                f"0+{per_min}x{n}",
            )
            for le, per_min in buckets
        ],
        *[
            (_series("mlops_prediction_batch_size_bucket", {"model_version": "3", "le": le}), f"0+{c}x{n}")
            for le, c in (("1", "0"), ("4", "60"), ("+Inf", "60"))
        ],
        (_series("mlops_predictions_total", {"model_version": "3", "predicted_class": "1"}), f"0+120x{n}"),
    ]
    v3, v4 = {"model_version": "3"}, {"model_version": "4"}
    route3 = {"route": "/predict", "model_version": "3"}
    checks: list[tuple[str, list[tuple[Mapping[str, str], float]]]] = [
        (REQUEST_RATE + '{route="/predict"}', [(route3, 1.0), ({**route3, "model_version": "4"}, 1.0)]),
        (VERSION_REQUEST_RATE, [(v3, 1.0), (v4, 1.0)]),
        (ERROR_RATIO, [(v3, 0.1), (v4, 0.0)]),
        (CLIENT_ERROR_RATIO, [(v3, 0.0), (v4, 0.25)]),
        (latency_record(0.5), [(route3, 0.375)]),
        (PREDICTION_RATE, [({**v3, "predicted_class": "1"}, 2.0)]),
        (batch_record(0.5), [(v3, 2.5)]),
    ]
    return {
        "rule_files": ["../rules/recording.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "name": "predictor recording rules",
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in inputs],
                "promql_expr_test": [
                    {
                        "expr": expr,
                        "eval_time": eval_at,
                        "exp_samples": [
                            {"labels": _series(expr.split("{")[0], labels), "value": value}
                            for labels, value in samples
                        ],
                    }
                    for expr, samples in checks
                ],
            }
        ],
    }


# --------------------------------------------------------------------------- rendering


def _dump(path: Path, data: Mapping[str, Any], target: Target) -> Path:
    header = (
        f"# Generated by `mlstack render monitoring --target {target}` from mlstack.yaml.\n"
        "# Do not edit: change mlstack.yaml and render again (docs/observability.md).\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + yaml.safe_dump(dict(data), sort_keys=False, width=1000))
    return path


def render_monitoring(
    config: Config,
    target: Target,
    out_dir: str | Path,
    *,
    targets: Mapping[str, str] | None = None,
    webhook_url: str | None = None,
    webhook_token: str | None = None,
) -> RenderedMonitoring:
    """Write Prometheus, rules, promtool tests and Alertmanager config for `target` under `out_dir`.

    Args:
        config: the effective config; every threshold comes from `config.monitoring`.
        target: `compose` (service names) or `local` (127.0.0.1 and `config.services` ports).
        out_dir: gets `prometheus/...` and `alertmanager/alertmanager.yml`.
        targets: service -> host:port overrides (tests use free ports).
        webhook_url: where Alertmanager posts CT alerts; defaults to $MLSTACK_WEBHOOK_URL, else the
            target's default (Alertmanager does not expand env vars, so the URL is fixed at render time).
        webhook_token: local target only; defaults to $MLSTACK_WEBHOOK_TOKEN. Written to
            `alertmanager/webhook_token` (mode 0600) and sent as `Authorization: Bearer`.
            The compose target always reads the Docker secret at COMPOSE_TOKEN_FILE.

    Returns:
        The paths written.
    """
    out = Path(out_dir)
    token_path: Path | None = None
    if target == "local":
        token = webhook_token if webhook_token is not None else os.environ.get(TOKEN_ENV, "")
        candidate = out / "alertmanager" / LOCAL_TOKEN_FILENAME
        if token:
            token_path = candidate
            token_path.parent.mkdir(parents=True, exist_ok=True)
            token_path.touch(mode=0o600)
            token_path.chmod(0o600)
            token_path.write_text(token)
        else:
            candidate.unlink(missing_ok=True)  # no token now: leave no old secret behind
    elif webhook_token is not None:
        raise ValueError("webhook_token applies to the local target; compose reads a Docker secret")
    ends = endpoints(
        config,
        target,
        targets=targets,
        webhook_url=webhook_url or os.environ.get(WEBHOOK_URL_ENV) or None,
        token_file=str(token_path.resolve()) if token_path else None,
    )
    prom = out / "prometheus"
    return RenderedMonitoring(
        prometheus_config=_dump(prom / "prometheus.yml", prometheus_config(config, ends), target),
        recording_rules=_dump(prom / "rules" / "recording.yml", recording_rules(config), target),
        alert_rules=_dump(prom / "rules" / "alerts.yml", alert_rules(config), target),
        alertmanager_config=_dump(
            out / "alertmanager" / "alertmanager.yml", alertmanager_config(config, ends), target
        ),
        promtool_tests=(
            _dump(prom / "tests" / PROMTOOL_TEST_FILES[0], alert_tests(config), target),
            _dump(prom / "tests" / PROMTOOL_TEST_FILES[1], recording_tests(config), target),
        ),
        token_file=token_path,
    )


def main_render(target: str, out_dir: str) -> None:
    """CLI entry (`mlstack render monitoring`): render `target` from the default config into `out_dir`.

    $MLSTACK_WEBHOOK_URL overrides the webhook URL; $MLSTACK_WEBHOOK_TOKEN is the local token.
    """
    if target not in TARGETS:
        raise ValueError(f"unknown monitoring target {target!r}; use one of {', '.join(TARGETS)}")
    rendered = render_monitoring(load_config(), target, out_dir)
    for path in rendered.all:
        print(path)
