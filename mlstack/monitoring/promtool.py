"""promtool unit-test cases: input series and what an alert must (not) do with them.

Cases are built next to the rule they test (`alerts`, `recording`); this module holds their shape, the
1-minute sample grid they use, and the test-file wrapper promtool reads.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlstack.contract import API as API_SERVICE
from mlstack.contract import CONTAINER_PORTS
from mlstack.contract import EXPORTER as EXPORTER_SERVICE

# Annotation value template; `expand` renders it the way Prometheus does.
VALUE = '{{ $value | printf "%.3g" }}'
ALERT_TESTS = "alerts_test.yml"
RECORDING_TESTS = "recording_test.yml"

# Labels of the series the cases feed in, as Prometheus' relabelling attaches them.
API = {"service": API_SERVICE, "instance": f"{API_SERVICE}:{CONTAINER_PORTS[API_SERVICE]}"}
EXPORTER = {"service": EXPORTER_SERVICE}
MODEL = {"model": "wine-classifier", "version": "3"}

Series = tuple[str, Mapping[str, str], str]
"""One input series: metric name, labels, promtool value notation (`1x10`, `0+60x10`)."""


@dataclass(frozen=True)
class Case:
    """Input series for one alert; `labels`/`value` describe the alert when it must fire."""

    series: Sequence[Series]
    fires: bool
    labels: Mapping[str, str] = field(default_factory=dict)
    value: float = 0.0
    eval_s: float = 0


def fires(series: Sequence[Series], labels: Mapping[str, str], value: float, at: float) -> Case:
    """A case where the alert fires at `at` seconds, with these labels and this `$value`."""
    return Case(series, True, labels, value, at)


def quiet(series: Sequence[Series], at: float) -> Case:
    """A case where the alert must not fire (nor be pending into firing) at `at` seconds."""
    return Case(series, False, eval_s=at)


def minutes(seconds: float) -> int:
    """Sample count (1m apart) covering `seconds` plus margin."""
    return int(seconds // 60) + 12


def held(seconds: float) -> float:
    """An evaluation time past a `for:` of `seconds`, on the 1m grid."""
    return (int(seconds // 60) + 2) * 60


def const(value: float, seconds: float) -> str:
    """A constant series long enough to hold through `seconds`."""
    return f"{value!r}x{minutes(seconds)}"


def expand(template: str, labels: Mapping[str, str], value: float) -> str:
    """Expand an annotation template the way Prometheus does, for the few constructs used here."""
    text = template.replace(VALUE, f"{value:.3g}")
    return re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels.get(m.group(1), ""), text)


def promtool_file(rule_file: str, tests: list[dict[str, Any]]) -> dict[str, Any]:
    """A promtool test file for `rules/<rule_file>`, evaluated every minute."""
    return {"rule_files": [f"../rules/{rule_file}"], "evaluation_interval": "1m", "tests": tests}
