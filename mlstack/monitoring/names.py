"""Names the rules, the dashboards, Alertmanager and the CT trigger agree on.

Panels and alerts query recording rules by these names, never by the raw expressions, so a changed
expression changes in one place.
"""

from __future__ import annotations

from mlstack.contract import ALERTMANAGER, API, EXPORTER, MLFLOW, PROMETHEUS, Service

# Scrape jobs, in order; each job's name is also its `service` label (docs/metrics.md).
SERVICES: tuple[Service, ...] = (API, EXPORTER, MLFLOW, ALERTMANAGER, PROMETHEUS)

# Recording-rule names.
LATENCY_QUANTILES: tuple[float, ...] = (0.5, 0.9, 0.99)
REQUEST_RATE = "route_model_version:mlops_http_requests:rate"
VERSION_REQUEST_RATE = "model_version:mlops_http_requests:rate"
ERROR_RATIO = "model_version:mlops_http_errors:ratio_rate"
CLIENT_ERROR_RATIO = "model_version:mlops_http_client_errors:ratio_rate"
PREDICTION_RATE = "model_version_predicted_class:mlops_predictions:rate"
BATCH_QUANTILES: tuple[float, ...] = (0.5, 0.99)
# The routes whose latency is alerted on (inference, not /metrics or health probes).
SERVING_ROUTE_RE = ".*predict.*"

# Routing: alerts carrying contract.CT_LABEL go to the retrain webhook, the rest to a null receiver.
RETRAIN_RECEIVER = "retrain-webhook"
DEFAULT_RECEIVER = "default"


def latency_record(quantile: float) -> str:
    """Recording-rule name of a predictor latency quantile, per route and model version."""
    return f"route_model_version:mlops_http_request_duration_seconds:p{round(quantile * 100)}"


def batch_record(quantile: float) -> str:
    """Recording-rule name of a `/predict` batch-size quantile, per model version."""
    return f"model_version:mlops_prediction_batch_size:p{round(quantile * 100)}"
