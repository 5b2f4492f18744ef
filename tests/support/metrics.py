"""The one Prometheus exposition-format reader of the tests (prometheus_client's own parser)."""

from __future__ import annotations

import requests
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_metrics(text: str) -> Samples:
    """Parse a /metrics body into {(sample name, labels): value}."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(base_url: str, timeout: float = 5.0) -> Samples:
    """GET `base_url`/metrics and parse it; a non-200 answer is an error, never an empty reading."""
    response = requests.get(f"{base_url.rstrip('/')}/metrics", timeout=timeout)
    response.raise_for_status()
    return parse_metrics(response.text)


def sample_value(samples: Samples, name: str, **labels: str) -> float | None:
    """The value of the series with exactly these labels, or None when it is absent."""
    return samples.get((name, frozenset(labels.items())))


def metric_total(samples: Samples, name: str, **labels: str) -> float | None:
    """The sum over every series of `name` whose labels include `labels`; None when there is none."""
    wanted = labels.items()
    values = [v for (sample, have), v in samples.items() if sample == name and wanted <= have]
    return sum(values) if values else None


def family_names(text: str) -> set[str]:
    """The metric family names in a /metrics body (counters without their `_total` suffix)."""
    return {family.name for family in text_string_to_metric_families(text)}
