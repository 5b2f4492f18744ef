"""Dashboard rules beyond Grafana's schema: the provisioned datasource, units, a layout without overlaps.

Each rule runs on the committed dashboards (equal to a fresh render, test_monitoring.py) and on a mutant
it must reject, so a rule that checks nothing would fail here.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from mlstack.config import load_config
from mlstack.monitoring.dashboards import build_dashboards
from tests.support.prom import GRAFANA_DIR, load_dashboards

Dashboard = dict[str, Any]
GRID_COLUMNS = 24


def provisioned_uids() -> set[str]:
    """uids of the datasources Grafana is provisioned with (grafana/provisioning/datasources)."""
    files = sorted((GRAFANA_DIR / "provisioning/datasources").glob("*.yml"))
    return {s["uid"] for f in files for s in yaml.safe_load(f.read_text())["datasources"]}


def foreign_datasources(dash: Dashboard, uids: set[str]) -> list[str]:
    """Panels, queries and (non built-in) annotations whose datasource is not a provisioned one."""
    bad = []
    for panel in dash["panels"]:
        if panel.get("datasource", {}).get("uid") not in uids:
            bad.append(f"panel {panel['title']!r}")
        bad += [
            f"panel {panel['title']!r} query {t['refId']}"
            for t in panel.get("targets", [])
            if t.get("datasource", {}).get("uid") not in uids
        ]
    bad += [
        f"annotation {a['name']!r}"
        for a in dash["annotations"]["list"]
        if not a.get("builtIn") and a["datasource"].get("uid") not in uids
    ]
    return bad


def timeseries_without_unit(dash: Dashboard) -> list[str]:
    """Time-series panels that do not state a unit."""
    return [
        p["title"]
        for p in dash["panels"]
        if p["type"] == "timeseries" and not p.get("fieldConfig", {}).get("defaults", {}).get("unit")
    ]


def layout_errors(dash: Dashboard) -> list[str]:
    """Panels that overlap another panel or leave the 24-column grid."""
    cells: dict[tuple[int, int], str] = {}
    errors = []
    for panel in dash["panels"]:
        pos, title = panel["gridPos"], panel["title"]
        if pos["x"] < 0 or pos["x"] + pos["w"] > GRID_COLUMNS or pos["w"] <= 0 or pos["h"] <= 0:
            errors.append(f"{title!r} is outside the grid: {pos}")
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                other = cells.setdefault((x, y), title)
                if other != title:
                    errors.append(f"{title!r} overlaps {other!r} at x={x}, y={y}")
                    break
            else:
                continue
            break
    return errors


@pytest.fixture(scope="module")
def dashboards() -> dict[str, Dashboard]:
    committed = load_dashboards()
    assert sorted(committed) == ["model-quality.json", "platform.json", "predictor.json"]
    return committed


def test_one_prometheus_datasource_is_provisioned() -> None:
    assert provisioned_uids() == {"prometheus"}


def test_every_panel_query_and_annotation_uses_the_provisioned_datasource(
    dashboards: dict[str, Dashboard],
) -> None:
    uids = provisioned_uids()
    for name, dash in dashboards.items():
        assert not foreign_datasources(dash, uids), name


def test_every_timeseries_panel_has_a_unit(dashboards: dict[str, Dashboard]) -> None:
    counted = 0
    for name, dash in dashboards.items():
        assert not timeseries_without_unit(dash), name
        counted += sum(p["type"] == "timeseries" for p in dash["panels"])
    assert counted >= 15


def test_no_two_panels_overlap(dashboards: dict[str, Dashboard]) -> None:
    for name, dash in dashboards.items():
        assert not layout_errors(dash), name


def test_layout_holds_for_any_config() -> None:
    """Thresholds change with the config, the layout does not; a render with other values is checked too."""
    cfg = load_config(
        environ={}, overrides={"monitoring.latency_p99_seconds": 3, "monitoring.accuracy_floor": 0.1}
    )
    for name, dash in build_dashboards(cfg).items():
        assert not layout_errors(dash), name
        assert not timeseries_without_unit(dash), name
        assert not foreign_datasources(dash, provisioned_uids()), name


# --------------------------------------------------------------------------- the rules reject mutants


def _mutant(dashboards: dict[str, Dashboard], name: str = "predictor.json") -> Dashboard:
    return copy.deepcopy(dashboards[name])


def test_a_foreign_datasource_is_found(dashboards: dict[str, Dashboard]) -> None:
    panel_ds = _mutant(dashboards)
    panel_ds["panels"][2]["datasource"] = {"type": "prometheus", "uid": "P1809F7CD0C75ACF3"}
    query_ds = _mutant(dashboards)
    query_ds["panels"][4]["targets"][0]["datasource"]["uid"] = "other"
    annotation_ds = _mutant(dashboards, "model-quality.json")
    annotation_ds["annotations"]["list"][1]["datasource"]["uid"] = "other"
    uids = provisioned_uids()
    assert foreign_datasources(panel_ds, uids) == [f"panel {panel_ds['panels'][2]['title']!r}"]
    assert foreign_datasources(query_ds, uids) == [f"panel {query_ds['panels'][4]['title']!r} query A"]
    assert foreign_datasources(annotation_ds, uids) == ["annotation 'Champion promotions'"]


def test_a_timeseries_panel_without_unit_is_found(dashboards: dict[str, Dashboard]) -> None:
    mutant = _mutant(dashboards)
    panel = next(p for p in mutant["panels"] if p["type"] == "timeseries")
    del panel["fieldConfig"]["defaults"]["unit"]
    assert timeseries_without_unit(mutant) == [panel["title"]]


def test_overlapping_and_off_grid_panels_are_found(dashboards: dict[str, Dashboard]) -> None:
    overlap = _mutant(dashboards)
    overlap["panels"][1]["gridPos"]["x"] -= 1  # one column into its left neighbour
    first, second = overlap["panels"][0]["title"], overlap["panels"][1]["title"]
    assert layout_errors(overlap) == [f"{second!r} overlaps {first!r} at x=5, y=0"]
    wide = _mutant(dashboards)
    wide["panels"][3]["gridPos"]["w"] += 1
    assert any("outside the grid" in e for e in layout_errors(wide))
