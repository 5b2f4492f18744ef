"""The Grafana dashboards (grafana/dashboards/*.json), rendered with the rest of the monitoring config.

Panels query the recording rules named in `names` where one exists and draw the alert thresholds from
`config.monitoring`, so dashboards, rules and mlstack.yaml agree. Panel options are complete as
Grafana 11.6 saves them: tests validate every dashboard against `@grafana/schema` (the dashboard and
each panel plugin's options), which requires them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from mlstack.config import Config
from mlstack.monitoring.names import (
    BATCH_QUANTILES,
    CLIENT_ERROR_RATIO,
    ERROR_RATIO,
    LATENCY_QUANTILES,
    PREDICTION_RATE,
    REQUEST_RATE,
    VERSION_REQUEST_RATE,
    batch_record,
    latency_record,
)

DATASOURCE_UID = "prometheus"  # the provisioned datasource (grafana.datasource_provisioning)
DATASOURCE = {"type": "prometheus", "uid": DATASOURCE_UID}
RATE = "$__rate_interval"
# The dashboard schema version Grafana 11.6 writes (@grafana/schema's defaultDashboard; a test compares):
# Grafana does not migrate these dashboards on load.
SCHEMA_VERSION = 41
# Panel options Grafana 11.6 saves with every panel of a kind; the panel plugins' schemas require them.
REDUCE_LAST = {"calcs": ["lastNotNull"], "fields": "", "values": False}
HIDDEN_LEGEND = {"calcs": [], "displayMode": "list", "placement": "bottom", "showLegend": False}
TOOLTIP = {"mode": "single", "sort": "none"}


@dataclass(frozen=True)
class Query:
    """One PromQL target and its legend."""

    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    """A panel before layout: kind, queries and display options."""

    title: str
    kind: str  # timeseries | stat | bargauge
    queries: tuple[Query, ...]
    unit: str  # stated per panel: Grafana's unit id (s, reqps, percentunit, short, ...)
    description: str = ""
    threshold: float | None = None  # drawn as a red line/colour from this value up
    threshold_below: bool = False  # red below the threshold instead (accuracy floors)
    width: int = 12
    height: int = 8
    options: dict[str, Any] = field(default_factory=dict)
    mappings: list[dict[str, Any]] = field(default_factory=list)


def _thresholds(panel: Panel) -> dict[str, Any]:
    steps: list[dict[str, Any]]
    if panel.threshold is None:
        steps = [{"color": "green", "value": None}]
    elif panel.threshold_below:
        steps = [{"color": "red", "value": None}, {"color": "green", "value": panel.threshold}]
    else:
        steps = [{"color": "green", "value": None}, {"color": "red", "value": panel.threshold}]
    return {"mode": "absolute", "steps": steps}


def _render_panel(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    custom: dict[str, Any] = {}
    if panel.kind == "timeseries" and panel.threshold is not None:
        custom["thresholdsStyle"] = {"mode": "line"}
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": panel.width, "h": panel.height},
        "fieldConfig": {
            "defaults": {
                "unit": panel.unit,
                "thresholds": _thresholds(panel),
                "mappings": panel.mappings,
                "custom": custom,
            },
            "overrides": [],
        },
        "options": panel.options,
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": DATASOURCE,
                "expr": q.expr,
                "legendFormat": q.legend,
                "range": True,
            }
            for i, q in enumerate(panel.queries)
        ],
    }


def layout(panels: Iterable[Panel]) -> list[dict[str, Any]]:
    """Place panels left to right on Grafana's 24-column grid; ids are 1, 2, ... in order."""
    rendered, x, y, row_height = [], 0, 0, 0
    for panel_id, panel in enumerate(panels, start=1):
        if x + panel.width > 24:
            x, y, row_height = 0, y + row_height, 0
        rendered.append(_render_panel(panel, panel_id, x, y))
        x += panel.width
        row_height = max(row_height, panel.height)
    return rendered


def dashboard(
    uid: str, title: str, panels: Iterable[Panel], annotations: Iterable[dict[str, Any]] = ()
) -> dict[str, Any]:
    """A complete dashboard model, time range last hour, 10 s refresh."""
    builtin = {
        "builtIn": 1,
        "datasource": {"type": "grafana", "uid": "-- Grafana --"},
        "enable": True,
        "hide": True,
        "iconColor": "rgba(0, 211, 255, 1)",
        "name": "Annotations & Alerts",
        "type": "dashboard",
    }
    return {
        "uid": uid,
        "title": title,
        "tags": ["mlstack"],
        "timezone": "utc",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": False,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "annotations": {"list": [builtin, *annotations]},
        "templating": {"list": []},
        "panels": layout(panels),
    }


def stat_options(text_mode: str = "auto") -> dict[str, Any]:
    """A stat panel's options: the last value, coloured by threshold, with a sparkline."""
    return {
        "colorMode": "value",
        "graphMode": "area",
        "justifyMode": "auto",
        "orientation": "auto",
        "percentChangeColorMode": "standard",
        "reduceOptions": REDUCE_LAST,
        "showPercentChange": False,
        "textMode": text_mode,
        "wideLayout": True,
    }


def bar_options() -> dict[str, Any]:
    """A bar gauge's options: one horizontal bar per series, last value."""
    return {
        "displayMode": "basic",
        "legend": HIDDEN_LEGEND,
        "maxVizHeight": 300,
        "minVizHeight": 16,
        "minVizWidth": 8,
        "namePlacement": "auto",
        "orientation": "horizontal",
        "reduceOptions": REDUCE_LAST,
        "showUnfilled": True,
        "sizing": "auto",
        "valueMode": "color",
    }


def stat(title: str, expr: str, legend: str = "", unit: str = "short", **kw: Any) -> Panel:
    """A single-value panel, 6 columns wide."""
    return Panel(
        title, "stat", (Query(expr, legend),), unit=unit, width=6, height=4, options=stat_options(), **kw
    )


def series(title: str, *queries: Query, unit: str, **kw: Any) -> Panel:
    """A time-series panel, legend as a table with last and max; the unit is always stated."""
    opts = {
        "legend": {
            "calcs": ["lastNotNull", "max"],
            "displayMode": "table",
            "placement": "bottom",
            "showLegend": True,
        },
        "tooltip": TOOLTIP,
    }
    return Panel(title, "timeseries", queries, unit=unit, options=opts, **kw)


def predictor_dashboard(config: Config) -> dict[str, Any]:
    """Latency, traffic, errors and batch sizes of the predictor, by model version."""
    m = config.monitoring
    latency = [
        series(
            f"Latency p{round(q * 100)} by route and version",
            Query(latency_record(q), "{{route}} v{{model_version}}"),
            unit="s",
            threshold=m.latency_p99_seconds if q == 0.99 else None,
            description=f"Recording rule {latency_record(q)}."
            + (" Red line: monitoring.latency_p99_seconds." if q == 0.99 else ""),
        )
        for q in LATENCY_QUANTILES
    ]
    return dashboard(
        "mlstack-predictor",
        "mlstack / Predictor",
        [
            stat("Champion version", "max by (model) (mlops_champion_version)", "{{model}}"),
            stat(
                "Served model",
                "max by (version, runtime) (mlops_model_info)",
                "v{{version}} ({{runtime}})",
                description="The version the predictor serves and its runtime (onnx or sklearn).",
            ),
            stat("Requests/s", f"sum({VERSION_REQUEST_RATE})", unit="reqps"),
            stat(
                "5xx ratio",
                f"max({ERROR_RATIO})",
                unit="percentunit",
                threshold=m.error_ratio,
            ),
            *latency,
            series(
                "Requests/s by route and version",
                Query(REQUEST_RATE, "{{route}} v{{model_version}}"),
                unit="reqps",
            ),
            series(
                "Error ratio by version",
                Query(ERROR_RATIO, "5xx v{{model_version}}"),
                Query(CLIENT_ERROR_RATIO, "4xx v{{model_version}}"),
                unit="percentunit",
                threshold=m.error_ratio,
                description="Red line: monitoring.error_ratio (the 5xx alert threshold).",
            ),
            series(
                "Batch size by version",
                *(
                    Query(batch_record(q), f"p{round(q * 100)} v{{{{model_version}}}}")
                    for q in BATCH_QUANTILES
                ),
                unit="short",
                description="Instances per /predict request.",
            ),
            series(
                "Predictions/s by class",
                Query(PREDICTION_RATE, "v{{model_version}} class {{predicted_class}}"),
                unit="ops",
            ),
            series(
                "Prediction log",
                Query("mlops_prediction_log_queue_depth", "queue depth"),
                Query(f"rate(mlops_prediction_log_written_total[{RATE}])", "written/s"),
                Query(
                    f"sum by (reason) (rate(mlops_prediction_log_refused_total[{RATE}]))",
                    "refused/s {{reason}}",
                ),
                unit="short",
            ),
            series(
                "Model reloads",
                Query(f"sum by (result) (increase(mlops_model_reload_total[{RATE}]))", "{{result}}"),
                unit="short",
            ),
            series(
                "Inputs outside the training range by feature",
                Query(
                    f"sum by (feature) (rate(mlops_input_out_of_range_total[{RATE}]))",
                    "{{feature}}",
                ),
                unit="short",
                description=(
                    "Values/s outside the served version's training range, per feature. They are served "
                    "(that is how drift shows); labelled ones too far out are quarantined, not trained on."
                ),
                width=24,
            ),
        ],
    )


def quality_dashboard(config: Config) -> dict[str, Any]:
    """Offline metrics per version, the champion over time, live accuracy and drift."""
    m = config.monitoring
    promotions = {
        "name": "Champion promotions",
        "datasource": DATASOURCE,
        "enable": True,
        "iconColor": "green",
        "expr": "changes(mlops_champion_version[2m]) > 0",
        "step": "1m",
        "titleFormat": "champion moved",
        "textFormat": "{{model}}",
        "tagKeys": "model",
    }
    return dashboard(
        "mlstack-model-quality",
        "mlstack / Model quality",
        [
            stat("Dataset drift", "max(mlops_drift_dataset_drift)", threshold=1),
            stat("Drifted features", "sum(mlops_drift_feature_drifted)"),
            stat("Drift window rows", "max(mlops_drift_window_size)"),
            stat(
                "Insufficient drift data",
                "max(mlops_drift_insufficient_data)",
                threshold=1,
                description="1 while the window has fewer rows than exporter.drift_min_rows: no scores.",
            ),
            Panel(
                "Test-set accuracy by version",
                "bargauge",
                (Query("mlops_model_accuracy", "v{{version}}"),),
                unit="percentunit",
                options=bar_options(),
            ),
            Panel(
                "Test-set F1 (weighted) by version",
                "bargauge",
                (Query("mlops_model_f1", "v{{version}}"),),
                unit="percentunit",
                options=bar_options(),
            ),
            series(
                "Champion version",
                Query("mlops_champion_version", "{{model}} champion"),
                unit="short",
                description="Annotations mark each move of the champion alias.",
            ),
            series(
                "Live accuracy",
                Query("mlops_live_accuracy", "v{{version}}"),
                unit="percentunit",
                threshold=m.accuracy_floor,
                threshold_below=True,
                description="Red below monitoring.accuracy_floor.",
            ),
            series(
                "Labelled predictions in the accuracy window",
                Query("mlops_live_labelled_count", "v{{version}}"),
                unit="short",
                threshold=m.accuracy_min_labelled,
                threshold_below=True,
                description="The accuracy alert needs at least monitoring.accuracy_min_labelled.",
            ),
            series(
                "Share of drifted features",
                Query("mlops_drift_share_drifted_features", "share"),
                unit="percentunit",
                threshold=m.drift_share_threshold,
                description="Red line: monitoring.drift_share_threshold.",
            ),
            series(
                "Per-feature drift score",
                Query("mlops_drift_feature_score", "{{feature}} ({{method}})"),
                unit="short",
            ),
            series(
                "Feedback used and excluded",
                Query("max by (status) (mlops_feedback_window_rows)", "{{status}} (window)"),
                Query("max(mlops_feedback_quarantined_rows)", "quarantined (table)"),
                unit="short",
                description=(
                    "The newest labelled predictions (exporter.feedback_window) a retrain would use or "
                    "exclude, and the rows the quarantine table holds out (`mlstack feedback list`)."
                ),
            ),
            series(
                "Excluded share of feedback",
                Query("max(mlops_feedback_excluded_share)", "excluded share"),
                unit="percentunit",
                threshold=m.feedback_excluded_share,
                description="Red line: monitoring.feedback_excluded_share (FeedbackQuarantineHigh).",
            ),
        ],
        annotations=[promotions],
    )


def platform_dashboard(config: Config) -> dict[str, Any]:
    """Service health, exporter freshness, the last pipeline run and alert states."""
    m = config.monitoring
    up_down = {"0": {"text": "DOWN", "color": "red"}, "1": {"text": "UP", "color": "green"}}
    return dashboard(
        "mlstack-platform",
        "mlstack / Platform",
        [
            Panel(
                "Up by service",
                "stat",
                (Query('up{service!=""}', "{{service}}"),),
                unit="short",
                threshold=1,
                threshold_below=True,
                width=24,
                height=4,
                options=stat_options("value_and_name"),
                mappings=[{"type": "value", "options": up_down}],
            ),
            series(
                "Exporter refresh age",
                Query("time() - mlops_exporter_last_refresh_timestamp_seconds", "{{source}}"),
                unit="s",
                threshold=m.exporter_stale_seconds,
                description="Red line: monitoring.exporter_stale_seconds.",
            ),
            series(
                "Exporter refresh errors",
                Query(f"increase(mlops_exporter_refresh_errors_total[{RATE}])", "{{source}}"),
                unit="short",
            ),
            stat(
                "Last pipeline succeeded",
                "max(mlops_pipeline_last_success)",
                threshold=1,
                threshold_below=True,
            ),
            stat(
                "Last pipeline run",
                "max by (status, trigger) (mlops_pipeline_last_run_info)",
                "{{status}} ({{trigger}})",
            ),
            stat("Last pipeline duration", "max(mlops_pipeline_last_duration_seconds)", unit="s"),
            stat(
                "Since last pipeline run", "time() - max(mlops_pipeline_last_run_timestamp_seconds)", unit="s"
            ),
            series(
                "Alerts",
                Query("sum by (alertname, alertstate) (ALERTS)", "{{alertname}} {{alertstate}}"),
                unit="short",
                description="Pending and firing alerts (docs/observability.md).",
                width=24,
            ),
        ],
    )


BUILDERS = {
    "predictor.json": predictor_dashboard,
    "model-quality.json": quality_dashboard,
    "platform.json": platform_dashboard,
}


def build_dashboards(config: Config) -> dict[str, dict[str, Any]]:
    """File name -> dashboard model."""
    return {name: build(config) for name, build in BUILDERS.items()}
