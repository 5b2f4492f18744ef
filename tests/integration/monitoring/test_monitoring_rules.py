"""promtool and amtool on the rendered monitoring config: syntax, rule unit tests, routing."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlstack.config import REPO_ROOT, load_config
from mlstack.monitoring.render import render_monitoring
from tests.support.binaries import require_binary

PROM = REPO_ROOT / "prometheus"
AM_CONFIG = REPO_ROOT / "alertmanager" / "alertmanager.yml"


@pytest.fixture(autouse=True)
def _no_webhook_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's MLSTACK_WEBHOOK_* must not change what a render produces here."""
    monkeypatch.delenv("MLSTACK_WEBHOOK_URL", raising=False)
    monkeypatch.delenv("MLSTACK_WEBHOOK_TOKEN", raising=False)


def _run(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=cwd)


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_promtool_check_config() -> None:
    out = _ok(_run(require_binary("promtool"), "check", "config", str(PROM / "prometheus.yml")))
    assert "2 rule files found" in out


def test_promtool_check_rules() -> None:
    out = _ok(
        _run(
            require_binary("promtool"),
            "check",
            "rules",
            str(PROM / "rules/recording.yml"),
            str(PROM / "rules/alerts.yml"),
        )
    )
    assert "SUCCESS" in out


def test_promtool_unit_tests_pass_on_committed_rules() -> None:
    tests = sorted(str(p) for p in (PROM / "tests").glob("*.yml"))
    assert len(tests) == 2
    out = _ok(_run(require_binary("promtool"), "test", "rules", *tests))
    assert out.count("SUCCESS") == 2


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    alerts = {
        r["alert"]
        for g in yaml.safe_load((PROM / "rules/alerts.yml").read_text())["groups"]
        for r in g["rules"]
    }
    cases = yaml.safe_load((PROM / "tests/alerts_test.yml").read_text())["tests"]
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in cases:
        for check in case["alert_rule_test"]:
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    assert firing == alerts
    assert quiet == alerts


def test_promtool_unit_tests_pass_with_other_thresholds(tmp_path: Path) -> None:
    """The generated cases follow the thresholds: a render with unusual values passes too."""
    cfg = load_config(
        environ={},
        overrides={
            "monitoring.drift_share_threshold": 0.9,
            "monitoring.drift_for_minutes": 0.05,
            "monitoring.latency_p99_seconds": 0.0123,
            "monitoring.error_ratio": 0.2,
            "monitoring.accuracy_floor": 0.95,
            "monitoring.accuracy_min_labelled": 3,
            "monitoring.champion_max_age_days": 0.5,
            "monitoring.exporter_stale_seconds": 45,
            "monitoring.scrape_interval_s": 30,
        },
    )
    rendered = render_monitoring(cfg, "local", tmp_path, webhook_token="")
    _ok(_run(require_binary("promtool"), "check", "config", str(rendered.prometheus_config)))
    _ok(_run(require_binary("promtool"), "test", "rules", *map(str, rendered.promtool_tests)))


def _mutate_alert(path: Path, name: str, change: Any) -> None:
    doc = yaml.safe_load(path.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == name:
                change(rule)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


MUTATIONS = {
    "drift ignores insufficient data": (
        "DataDriftDetected",
        lambda r: r.update(expr=r["expr"].split(" unless ")[0]),
    ),
    "accuracy ignores the labelled-count guard": (
        "LiveAccuracyBelowFloor",
        lambda r: r.update(expr=r["expr"].replace(">= 50", ">= 0")),
    ),
    "drift holds shorter": ("DataDriftDetected", lambda r: r.update({"for": "1m"})),
    "drift loses its ct_trigger label": ("DataDriftDetected", lambda r: r["labels"].pop("ct_trigger")),
    "latency threshold off by 10x": (
        "PredictorHighP99Latency",
        lambda r: r.update(expr=r["expr"].replace("> 0.1", "> 1")),
    ),
    "latency alert counts /metrics": (
        "PredictorHighP99Latency",
        lambda r: r.update(expr=r["expr"].replace('{route=~".*predict.*"}', "")),
    ),
    "stale check inverted": ("ExporterStale", lambda r: r.update(expr=r["expr"].replace(" > ", " < "))),
    "target down never fires": ("TargetDown", lambda r: r.update(expr=r["expr"].replace("== 0", "== 2"))),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_promtool_unit_tests_catch_a_broken_rule(tmp_path: Path, mutation: str) -> None:
    """The unit tests bite: each plausible mistake in a rule makes `promtool test rules` fail."""
    promtool = require_binary("promtool")
    rendered = render_monitoring(load_config(environ={}), "compose", tmp_path)
    alert, change = MUTATIONS[mutation]
    _mutate_alert(rendered.alert_rules, alert, change)
    _ok(_run(promtool, "check", "rules", str(rendered.alert_rules)))  # still valid syntax
    result = _run(promtool, "test", "rules", str(rendered.promtool_tests[0]))
    assert result.returncode != 0, f"mutation {mutation!r} went unnoticed:\n{result.stdout}"
    assert alert in result.stdout + result.stderr


def test_recording_rule_tests_catch_a_wrong_ratio(tmp_path: Path) -> None:
    rendered = render_monitoring(load_config(environ={}), "compose", tmp_path)
    text = rendered.recording_rules.read_text().replace('status=~"5.."', 'status=~"4.."')
    rendered.recording_rules.write_text(text)
    result = _run(require_binary("promtool"), "test", "rules", str(rendered.promtool_tests[1]))
    assert result.returncode != 0
    assert "model_version:mlops_http_errors:ratio_rate" in result.stdout + result.stderr


def test_amtool_check_config() -> None:
    out = _ok(_run(require_binary("amtool"), "check-config", str(AM_CONFIG)))
    assert "2 receivers" in out


def test_amtool_accepts_the_local_render_with_a_token_file(tmp_path: Path) -> None:
    rendered = render_monitoring(load_config(environ={}), "local", tmp_path, webhook_token="t0ken")
    _ok(_run(require_binary("amtool"), "check-config", str(rendered.alertmanager_config)))
    _ok(_run(require_binary("promtool"), "check", "config", str(rendered.prometheus_config)))


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["alertname=DataDriftDetected", "ct_trigger=drift", "severity=warning"], "retrain-webhook"),
        (["alertname=LiveAccuracyBelowFloor", "ct_trigger=accuracy"], "retrain-webhook"),
        (["alertname=TargetDown", "service=api", "severity=critical"], "default"),
        (["alertname=ChampionStale", "severity=info"], "default"),
    ],
)
def test_amtool_routes_ct_alerts_to_the_retrain_webhook(labels: list[str], receiver: str) -> None:
    out = _ok(
        _run(require_binary("amtool"), "config", "routes", "test", f"--config.file={AM_CONFIG}", *labels)
    )
    assert out.strip() == receiver
