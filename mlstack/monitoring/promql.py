"""Values as Prometheus and Alertmanager read them: numbers, durations, series selectors, rate windows."""

from __future__ import annotations

from collections.abc import Mapping

from mlstack.config import Config


def num(value: float) -> str:
    """A threshold as PromQL and people read it: 30, 0.1, 1e-06."""
    short = f"{value:g}"
    return short if float(short) == value else repr(value)


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


def selector(name: str, labels: Mapping[str, str]) -> str:
    """A series selector, `name{k="v",...}`, labels in the given order (promtool input series)."""
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return f"{name}{{{inner}}}"


def rate_window_s(config: Config) -> int:
    """The range of rate() windows: at least 1m and four scrapes, so a missed scrape leaves no gap."""
    return max(60, 4 * config.monitoring.scrape_interval_s)
