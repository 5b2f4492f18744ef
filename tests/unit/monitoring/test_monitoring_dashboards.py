"""Grafana provisioning and generated dashboards: structure, datasource, thresholds, metric names."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from mlstack.config import REPO_ROOT, load_config
from mlstack.monitoring.alerts import alert_specs
from mlstack.monitoring.dashboards import build_dashboards
from mlstack.monitoring.recording import recording_rules
from tests.support.prom import GRAFANA_DIR, annotation_queries, load_dashboards, panel_queries

PROVISIONING = GRAFANA_DIR / "provisioning"
# Metrics that are not the project's own (Prometheus' and client libraries').
FOREIGN_METRICS = {"up", "ALERTS", "process_start_time_seconds"}


def _datasource() -> dict[str, Any]:
    (source,) = yaml.safe_load((PROVISIONING / "datasources/prometheus.yml").read_text())["datasources"]
    return source


def test_three_dashboards_with_unique_uids_and_panel_ids() -> None:
    dashboards = load_dashboards()
    assert sorted(dashboards) == ["model-quality.json", "platform.json", "predictor.json"]
    uids = [d["uid"] for d in dashboards.values()]
    assert len(set(uids)) == len(uids)
    for name, dash in dashboards.items():
        ids = [p["id"] for p in dash["panels"]]
        assert len(set(ids)) == len(ids), f"{name}: duplicate panel ids {ids}"
        assert all(p["targets"] for p in dash["panels"]), f"{name}: a panel without a query"


def test_every_panel_uses_the_provisioned_datasource() -> None:
    source = _datasource()
    assert source["uid"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    for dash in load_dashboards().values():
        for panel in dash["panels"]:
            assert panel["datasource"] == {"type": "prometheus", "uid": source["uid"]}, panel["title"]
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == source["uid"], panel["title"]
        for annotation in dash["annotations"]["list"]:
            if "expr" in annotation:
                assert annotation["datasource"]["uid"] == source["uid"]


def test_no_hard_coded_instances_in_queries() -> None:
    dashboards = load_dashboards()
    queries = panel_queries(dashboards) + annotation_queries(dashboards)
    assert len(queries) > 30
    address = re.compile(r"localhost|127\.0\.0\.1|:\d{2,5}\b|instance\s*=|job\s*=")
    bad = [q.where for q in queries if address.search(q.expr)]
    assert not bad, f"hard-coded addresses in {bad}"


def test_dashboards_show_every_recording_rule() -> None:
    exprs = " ".join(q.expr for q in panel_queries(load_dashboards()))
    recorded = [r["record"] for r in recording_rules(load_config(environ={}))["groups"][0]["rules"]]
    missing = [name for name in recorded if name not in exprs]
    assert not missing, f"recording rules on no dashboard: {missing}"


def test_queries_and_rules_only_use_catalogued_metrics() -> None:
    """Every mlops_* name in panels and alerts is in docs/metrics.md (the contract)."""
    catalogue = (REPO_ROOT / "docs/metrics.md").read_text()
    texts = [q.expr for q in panel_queries(load_dashboards())]
    texts += [a.expr for a in alert_specs(load_config(environ={}))]
    texts += [r["expr"] for r in recording_rules(load_config(environ={}))["groups"][0]["rules"]]
    used = {m for text in texts for m in re.findall(r"(?<![:\w])(mlops_\w+)", text)}

    def catalogued(name: str) -> bool:
        histogram = re.sub(r"_(bucket|sum|count)$", "", name)  # series of a catalogued histogram
        return f"`{name}`" in catalogue or f"`{histogram}`" in catalogue

    unknown = sorted(m for m in used if not catalogued(m))
    assert not unknown, f"metrics not in docs/metrics.md: {unknown}"


def test_panel_thresholds_follow_the_config() -> None:
    cfg = load_config(
        environ={},
        overrides={"monitoring.latency_p99_seconds": 0.42, "monitoring.accuracy_floor": 0.61},
    )
    dashboards = build_dashboards(cfg)

    def steps(dash: dict[str, Any], title: str) -> list[dict[str, Any]]:
        panel = next(p for p in dash["panels"] if p["title"] == title)
        return panel["fieldConfig"]["defaults"]["thresholds"]["steps"]

    assert steps(dashboards["predictor.json"], "Latency p99 by route and version")[1] == {
        "color": "red",
        "value": 0.42,
    }
    assert steps(dashboards["model-quality.json"], "Live accuracy") == [
        {"color": "red", "value": None},
        {"color": "green", "value": 0.61},
    ]


def test_promotion_annotation_queries_champion_changes() -> None:
    (annotation,) = annotation_queries(load_dashboards())
    assert annotation.expr.startswith("changes(mlops_champion_version[")


def test_grafana_has_no_default_password_and_no_anonymous_access() -> None:
    ini = (GRAFANA_DIR / "grafana.ini").read_text()
    assert re.search(r"\[auth\.anonymous\]\s*\nenabled = false", ini)
    assert "allow_sign_up = false" in ini
    for path in GRAFANA_DIR.rglob("*"):
        if path.is_file() and path.suffix in {".ini", ".yml", ".yaml", ".json", ".py"}:
            text = path.read_text()
            assert not re.search(r"admin_password\s*=|password\s*[:=]\s*\S", text), path


def test_dashboard_provider_points_at_the_generated_json() -> None:
    (provider,) = yaml.safe_load((PROVISIONING / "dashboards/dashboards.yml").read_text())["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    assert provider["allowUiUpdates"] is False
    assert json.loads((GRAFANA_DIR / "dashboards/predictor.json").read_text())["uid"] == "mlstack-predictor"
