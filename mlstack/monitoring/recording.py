"""Recording rules (rules/recording.yml) and the promtool test that checks their arithmetic."""

from __future__ import annotations

from collections.abc import Mapping
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
from mlstack.monitoring.promql import duration, rate_window_s, selector
from mlstack.monitoring.promtool import promtool_file

RULE_FILE = "recording.yml"
GROUP = "mlstack-predictor"


def recording_rules(config: Config) -> dict[str, Any]:
    """rules/recording.yml: predictor latency quantiles, rates and error ratios."""
    window = duration(rate_window_s(config))

    def rate(sel: str, by: str) -> str:
        return f"sum by ({by}) (rate({sel}[{window}]))"

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
    return {"groups": [{"name": GROUP, "rules": rules}]}


def recording_tests(config: Config) -> dict[str, Any]:
    """prometheus/tests/recording_test.yml: the recording rules compute what their names say."""
    n = rate_window_s(config) // 60 + 10
    eval_at = duration((n - 2) * 60)
    req = {"route": "/predict", "method": "POST", "model_version": "3"}
    buckets = [("0.25", "0"), ("0.5", "60"), ("+Inf", "60")]
    inputs = [
        # model version 3: 54 OK + 6 server errors + 0 client errors a minute (1 request/s).
        (selector("mlops_http_requests_total", {**req, "status": "200"}), f"0+54x{n}"),
        (selector("mlops_http_requests_total", {**req, "status": "500"}), f"0+6x{n}"),
        # model version 4: only successes and client errors.
        (selector("mlops_http_requests_total", {**req, "model_version": "4", "status": "200"}), f"0+45x{n}"),
        (selector("mlops_http_requests_total", {**req, "model_version": "4", "status": "422"}), f"0+15x{n}"),
        *[
            (
                selector("mlops_http_request_duration_seconds_bucket", {**req, "status": "200", "le": le}),
                f"0+{per_min}x{n}",
            )
            for le, per_min in buckets
        ],
        *[
            (selector("mlops_prediction_batch_size_bucket", {"model_version": "3", "le": le}), f"0+{c}x{n}")
            for le, c in (("1", "0"), ("4", "60"), ("+Inf", "60"))
        ],
        (selector("mlops_predictions_total", {"model_version": "3", "predicted_class": "1"}), f"0+120x{n}"),
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
    return promtool_file(
        RULE_FILE,
        [
            {
                "name": "predictor recording rules",
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in inputs],
                "promql_expr_test": [
                    {
                        "expr": expr,
                        "eval_time": eval_at,
                        "exp_samples": [
                            {"labels": selector(expr.split("{")[0], labels), "value": value}
                            for labels, value in samples
                        ],
                    }
                    for expr, samples in checks
                ],
            }
        ],
    )
