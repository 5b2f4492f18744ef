"""The monitoring render: committed files equal a fresh render; thresholds come only from the config."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from mlstack.cli import app
from mlstack.config import REPO_ROOT, Config, load_config
from mlstack.monitoring.endpoints import COMPOSE_TARGETS
from mlstack.monitoring.names import SERVICES
from mlstack.monitoring.promql import duration
from mlstack.monitoring.render import render_monitoring

COMMITTED = [
    "prometheus/prometheus.yml",
    "prometheus/rules/recording.yml",
    "prometheus/rules/alerts.yml",
    "prometheus/tests/alerts_test.yml",
    "prometheus/tests/recording_test.yml",
    "alertmanager/alertmanager.yml",
    "grafana/provisioning/datasources/prometheus.yml",
    "grafana/provisioning/dashboards/dashboards.yml",
    "grafana/dashboards/predictor.json",
    "grafana/dashboards/model-quality.json",
    "grafana/dashboards/platform.json",
]
# Directories holding only rendered files: a file here that the render does not write is stale.
RENDERED_DIRS = ["prometheus", "alertmanager", "grafana/dashboards", "grafana/provisioning"]


@pytest.fixture(autouse=True)
def _no_webhook_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's MLSTACK_WEBHOOK_* must not change what a render produces here."""
    monkeypatch.delenv("MLSTACK_WEBHOOK_URL", raising=False)
    monkeypatch.delenv("MLSTACK_WEBHOOK_TOKEN", raising=False)


def _config(**overrides: Any) -> Config:
    # environ={} so a developer's MLSTACK__* variables cannot change what is compared.
    return load_config(environ={}, overrides={f"monitoring.{k}": v for k, v in overrides.items()})


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _alerts(path: Path) -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for g in _load(path)["groups"] for r in g["rules"]}


def test_committed_files_equal_a_fresh_compose_render(tmp_path: Path) -> None:
    rendered = render_monitoring(_config(), "compose", tmp_path)
    written = sorted(p.relative_to(tmp_path).as_posix() for p in rendered.all)
    assert written == sorted(COMMITTED)
    stale = [rel for rel in COMMITTED if (REPO_ROOT / rel).read_text() != (tmp_path / rel).read_text()]
    assert not stale, (
        f"{stale} differ from mlstack.yaml; run `mlstack render monitoring --target compose --out .`"
    )
    present = {p.relative_to(REPO_ROOT).as_posix() for d in RENDERED_DIRS for p in (REPO_ROOT / d).rglob("*")}
    extra = sorted(rel for rel in present if (REPO_ROOT / rel).is_file() and rel not in COMMITTED)
    assert not extra, f"{extra} are not written by the render: remove them or render them"


def test_thresholds_come_from_config(tmp_path: Path) -> None:
    cfg = _config(
        drift_share_threshold=0.37,
        drift_for_minutes=7,
        latency_p99_seconds=0.42,
        error_ratio=0.031,
        accuracy_floor=0.66,
        accuracy_min_labelled=77,
        champion_max_age_days=12,
        exporter_stale_seconds=123,
    )
    alerts = _alerts(render_monitoring(cfg, "compose", tmp_path).alert_rules)
    assert "mlops_drift_share_drifted_features >= 0.37" in alerts["DataDriftDetected"]["expr"]
    assert alerts["DataDriftDetected"]["for"] == "7m"
    assert alerts["PredictorHighP99Latency"]["expr"].endswith("> 0.42")
    assert alerts["PredictorHighErrorRatio"]["expr"].endswith("> 0.031")
    assert "mlops_live_accuracy < 0.66" in alerts["LiveAccuracyBelowFloor"]["expr"]
    assert "mlops_live_labelled_count >= 77" in alerts["LiveAccuracyBelowFloor"]["expr"]
    assert alerts["ChampionStale"]["expr"].endswith("> 12")
    assert "mlops_exporter_last_refresh_timestamp_seconds > 123 and" in alerts["ExporterStale"]["expr"]
    # The annotation names the config key, so an operator knows where to change it.
    assert (
        "monitoring.drift_share_threshold = 0.37" in alerts["DataDriftDetected"]["annotations"]["description"]
    )


def test_default_thresholds_match_mlstack_yaml() -> None:
    mon = yaml.safe_load((REPO_ROOT / "mlstack.yaml").read_text())["monitoring"]
    alerts = _alerts(REPO_ROOT / "prometheus/rules/alerts.yml")
    assert f">= {mon['drift_share_threshold']}" in alerts["DataDriftDetected"]["expr"]
    assert alerts["PredictorHighP99Latency"]["expr"].endswith(f"> {mon['latency_p99_seconds']}")
    assert alerts["ChampionStale"]["expr"].endswith(f"> {mon['champion_max_age_days']}")


def test_every_alert_has_for_severity_and_text() -> None:
    alerts = _alerts(REPO_ROOT / "prometheus/rules/alerts.yml")
    assert set(alerts) >= {
        "TargetDown",
        "PredictorHighP99Latency",
        "PredictorHighErrorRatio",
        "DataDriftDetected",
        "LiveAccuracyBelowFloor",
        "ChampionStale",
        "ExporterRefreshFailing",
        "ExporterStale",
    }
    for name, rule in alerts.items():
        assert "for" in rule, name
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
        assert rule["annotations"]["runbook"].startswith("docs/observability.md#"), name
    assert alerts["DataDriftDetected"]["labels"]["ct_trigger"] == "drift"
    assert alerts["LiveAccuracyBelowFloor"]["labels"]["ct_trigger"] == "accuracy"
    ct = {n for n, r in alerts.items() if "ct_trigger" in r["labels"]}
    assert ct == {"DataDriftDetected", "LiveAccuracyBelowFloor"}


def test_runbook_anchors_exist_in_docs() -> None:
    doc = (REPO_ROOT / "docs/observability.md").read_text().lower()
    for name in _alerts(REPO_ROOT / "prometheus/rules/alerts.yml"):
        assert f"### {name.lower()}" in doc, f"docs/observability.md has no runbook section for {name}"


def test_compose_scrapes_every_service_with_a_service_label() -> None:
    prom = _load(REPO_ROOT / "prometheus/prometheus.yml")
    jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
    assert list(jobs) == list(SERVICES)
    for name, job in jobs.items():
        assert job["static_configs"][0]["targets"] == [COMPOSE_TARGETS[name]]
        assert {"target_label": "service", "replacement": name} in job["relabel_configs"]
    assert jobs["mlflow"]["metrics_path"] == "/metrics"
    assert prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]
    assert prom["rule_files"] == ["rules/recording.yml", "rules/alerts.yml"]


def test_compose_alertmanager_routes_ct_alerts_with_a_secret_file() -> None:
    am = _load(REPO_ROOT / "alertmanager/alertmanager.yml")
    assert am["route"]["receiver"] == "default"
    (ct_route,) = am["route"]["routes"]
    assert ct_route["receiver"] == "retrain-webhook"
    assert ct_route["matchers"] == ['ct_trigger=~".+"']
    assert ct_route["group_by"] == ["ct_trigger"]
    receivers = {r["name"]: r for r in am["receivers"]}
    (hook,) = receivers["retrain-webhook"]["webhook_configs"]
    assert hook["url"] == "http://jenkins:8080/generic-webhook-trigger/invoke"
    assert hook["send_resolved"] is False
    assert hook["http_config"]["authorization"] == {
        "type": "Bearer",
        "credentials_file": "/run/secrets/mlstack_webhook_token",
    }
    # No token may be committed: nothing but the file reference.
    assert "credentials:" not in (REPO_ROOT / "alertmanager/alertmanager.yml").read_text()


def test_ct_route_intervals_cover_the_ct_cooldown(tmp_path: Path) -> None:
    cfg = load_config(environ={}, overrides={"ct.cooldown_s": 3600})
    am = _load(render_monitoring(cfg, "compose", tmp_path).alertmanager_config)
    assert am["route"]["routes"][0]["group_interval"] == "1h"
    assert am["route"]["routes"][0]["repeat_interval"] == "24h"


def test_local_target_uses_config_ports_and_writes_token_file(tmp_path: Path) -> None:
    cfg = load_config(environ={}, overrides={"services.api_port": 17654, "services.trigger_port": 19095})
    rendered = render_monitoring(cfg, "local", tmp_path, webhook_token="s3cret-token")
    prom = _load(rendered.prometheus_config)
    targets = {j["job_name"]: j["static_configs"][0]["targets"][0] for j in prom["scrape_configs"]}
    assert targets["api"] == "127.0.0.1:17654"
    assert targets["exporter"] == f"127.0.0.1:{cfg.services.exporter_port}"
    am_text = rendered.alertmanager_config.read_text()
    assert "s3cret-token" not in am_text
    hook = _load(rendered.alertmanager_config)["receivers"][1]["webhook_configs"][0]
    assert hook["url"] == "http://127.0.0.1:19095/alertmanager"
    assert rendered.token_file is not None
    assert hook["http_config"]["authorization"]["credentials_file"] == str(rendered.token_file.resolve())
    assert rendered.token_file.read_text() == "s3cret-token"
    assert stat.S_IMODE(rendered.token_file.stat().st_mode) == 0o600


def test_local_token_defaults_to_env_and_is_optional(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSTACK_WEBHOOK_TOKEN", "from-env")
    with_token = render_monitoring(_config(), "local", tmp_path / "a")
    assert with_token.token_file is not None and with_token.token_file.read_text() == "from-env"
    monkeypatch.delenv("MLSTACK_WEBHOOK_TOKEN")
    without = render_monitoring(_config(), "local", tmp_path / "a")
    assert without.token_file is None
    assert not (tmp_path / "a/alertmanager/webhook_token").exists(), "the old token file was left behind"
    hook = _load(without.alertmanager_config)["receivers"][1]["webhook_configs"][0]
    assert "http_config" not in hook


def test_overrides_replace_targets_and_webhook(tmp_path: Path) -> None:
    rendered = render_monitoring(
        _config(scrape_interval_s=1),
        "local",
        tmp_path,
        targets={"exporter": "127.0.0.1:1234", "alertmanager": "127.0.0.1:4321"},
        webhook_url="http://127.0.0.1:999/hook",
        webhook_token="",
    )
    prom = _load(rendered.prometheus_config)
    assert prom["global"] == {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"}
    assert prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["127.0.0.1:4321"]
    exporter = next(j for j in prom["scrape_configs"] if j["job_name"] == "exporter")
    assert exporter["static_configs"][0]["targets"] == ["127.0.0.1:1234"]
    assert _load(rendered.alertmanager_config)["receivers"][1]["webhook_configs"][0]["url"] == (
        "http://127.0.0.1:999/hook"
    )


def test_bad_render_arguments_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown monitoring target 'nomad'"):
        render_monitoring(_config(), "nomad", tmp_path)
    with pytest.raises(ValueError, match=r"unknown service\(s\) \['grafana'\]"):
        render_monitoring(_config(), "local", tmp_path, targets={"grafana": "127.0.0.1:3000"})
    with pytest.raises(ValueError, match="compose reads a Docker secret"):
        render_monitoring(_config(), "compose", tmp_path, webhook_token="x")
    with pytest.raises(ValueError, match="k8s reads the mlstack-webhook-token Secret"):
        render_monitoring(_config(), "k8s", tmp_path, webhook_token="x")
    with pytest.raises(ValueError, match="the k8s target discovers its scrape targets"):
        render_monitoring(_config(), "k8s", tmp_path, targets={"api": "10.0.0.1:7654"})
    refused = CliRunner().invoke(app, ["render", "monitoring", "--target", "nomad", "--out", str(tmp_path)])
    assert refused.exit_code == 2
    assert "'nomad': local | compose | k8s" in refused.output


def test_webhook_url_env_is_read_at_render_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSTACK_WEBHOOK_URL", "http://ci.example.internal/generic-webhook-trigger/invoke")
    am = _load(render_monitoring(_config(), "compose", tmp_path).alertmanager_config)
    assert am["receivers"][1]["webhook_configs"][0]["url"] == (
        "http://ci.example.internal/generic-webhook-trigger/invoke"
    )
    explicit = render_monitoring(_config(), "compose", tmp_path, webhook_url="http://127.0.0.1:1/x")
    assert (
        _load(explicit.alertmanager_config)["receivers"][1]["webhook_configs"][0]["url"]
        == "http://127.0.0.1:1/x"
    )


def test_render_command_writes_the_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSTACK_WEBHOOK_URL", "http://jenkins.internal:8080/generic-webhook-trigger/invoke")
    result = CliRunner().invoke(app, ["render", "monitoring", "--target", "compose", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    hook = _load(tmp_path / "alertmanager/alertmanager.yml")["receivers"][1]["webhook_configs"][0]
    assert hook["url"] == "http://jenkins.internal:8080/generic-webhook-trigger/invoke"
    assert (tmp_path / "prometheus/rules/alerts.yml").exists()


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (3, "3s"), (90, "90s"), (300, "5m"), (3600, "1h"), (1.5, "1500ms")]
)
def test_duration_strings(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_k8s_target_discovers_scrape_targets_and_keeps_the_rest_of_compose(tmp_path: Path) -> None:
    """Only target discovery differs from compose: rules, routing, provisioning and dashboards are equal."""
    compose = render_monitoring(_config(), "compose", tmp_path / "compose")
    k8s = render_monitoring(_config(), "k8s", tmp_path / "k8s")
    assert k8s.promtool_tests == ()  # compose's render holds them; the rules are the same files
    assert [p.relative_to(tmp_path / "k8s").as_posix() for p in k8s.copied] == ["grafana/grafana.ini"]
    for ours, theirs in [
        (k8s.recording_rules, compose.recording_rules),
        (k8s.alert_rules, compose.alert_rules),
        (k8s.alertmanager_config, compose.alertmanager_config),
        *zip(k8s.grafana_provisioning, compose.grafana_provisioning, strict=True),
        *zip(k8s.dashboards, compose.dashboards, strict=True),
    ]:
        assert (
            _load(ours) == _load(theirs) if ours.suffix == ".yml" else ours.read_text() == theirs.read_text()
        )
    prom, base = _load(k8s.prometheus_config), _load(compose.prometheus_config)
    assert {k: v for k, v in prom.items() if k != "scrape_configs"} == {
        k: v for k, v in base.items() if k != "scrape_configs"
    }
    for job in prom["scrape_configs"]:
        name = job["job_name"]
        assert "static_configs" not in job
        assert job["kubernetes_sd_configs"] == [
            {"role": "endpointslice", "namespaces": {"own_namespace": True}}
        ]
        keep, pod, service = job["relabel_configs"]
        assert keep == {
            "source_labels": ["__meta_kubernetes_service_name", "__meta_kubernetes_endpointslice_port_name"],
            "regex": f"{name};http",
            "action": "keep",
        }
        assert pod == {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"}
        assert service == {"target_label": "service", "replacement": name}
    assert "&id" not in k8s.prometheus_config.read_text(), "YAML anchors: a discovery block is shared"
