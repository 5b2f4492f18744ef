"""Every Grafana dashboard validates against @grafana/schema 11.6.0 (the compose image's Grafana), under node.

No Grafana server can run here (none is reachable from PyPI, Debian or npm), so the dashboards are
checked against Grafana's own published schema instead: tests/support/grafana_schema/validate.mjs turns
the package's TypeScript types (the dashboard, and each panel plugin's options) into JSON Schema with
ts-json-schema-generator and validates with ajv. Mutants prove the check rejects what Grafana would.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlstack.config import REPO_ROOT
from tests.support.binaries import require_node_packages
from tests.support.prom import load_dashboards

pytestmark = pytest.mark.integration

VALIDATOR = REPO_ROOT / "tests/support/grafana_schema/validate.mjs"
PACKAGES = ("@grafana/schema", "ts-json-schema-generator", "ajv")
LEGACY_ANNOTATION_KEYS = ["expr", "step", "tagKeys", "textFormat", "titleFormat"]

Dashboard = dict[str, Any]


def _gridpos_w_string(d: Dashboard) -> None:
    d["panels"][0]["gridPos"]["w"] = str(d["panels"][0]["gridPos"]["w"])


def _no_schema_version(d: Dashboard) -> None:
    del d["schemaVersion"]


def _unlisted_annotation_key(d: Dashboard) -> None:
    d["annotations"]["list"][1]["legendFormat"] = "{{model}}"


def _legacy_key_not_a_string(d: Dashboard) -> None:
    d["annotations"]["list"][1]["step"] = 60


def _bad_option_value(d: Dashboard) -> None:
    d["panels"][0]["options"]["textMode"] = "valueAndName"


def _misspelled_panel_key(d: Dashboard) -> None:
    d["panels"][1]["gridpos"] = d["panels"][1].pop("gridPos")


def _unknown_panel_type(d: Dashboard) -> None:
    d["panels"][0]["type"] = "graph"


# name -> (source dashboard, mutation, (JSON pointer, message) the validator must report)
MUTANTS: dict[str, tuple[str, Callable[[Dashboard], None], tuple[str, str]]] = {
    "gridpos-w-string": ("predictor.json", _gridpos_w_string, ("/panels/0/gridPos/w", "must be number")),
    "no-schema-version": (
        "predictor.json",
        _no_schema_version,
        ("", "must have required property 'schemaVersion'"),
    ),
    "unlisted-annotation-key": (
        "model-quality.json",
        _unlisted_annotation_key,
        ("/annotations/list/1", "must NOT have additional properties"),
    ),
    "legacy-key-not-a-string": (
        "model-quality.json",
        _legacy_key_not_a_string,
        ("/annotations/list/1/step", "must be string"),
    ),
    "bad-option-value": (
        "predictor.json",
        _bad_option_value,
        ("/panels/0/options/textMode", "must be equal to one of the allowed values"),
    ),
    "misspelled-panel-key": (
        "predictor.json",
        _misspelled_panel_key,
        ("/panels/1", "must NOT have additional properties"),
    ),
    "unknown-panel-type": (
        "predictor.json",
        _unknown_panel_type,
        ("/panels/0/type", "has no schema mapping"),
    ),
}


def validate(node: str, files: list[Path]) -> tuple[int, dict[str, Any]]:
    """Run the validator on `files`; its exit code and JSON report."""
    result = subprocess.run(
        [node, str(VALIDATOR), "--json", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
        check=False,
    )
    assert result.returncode in (0, 1), f"the schema check could not run:\n{result.stderr[-3000:]}"
    return result.returncode, json.loads(result.stdout)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One validator run (generating the schema takes seconds) over the committed dashboards and mutants."""
    node = require_node_packages(*PACKAGES)
    tmp = tmp_path_factory.mktemp("grafana-schema")
    committed = load_dashboards()
    files = sorted((REPO_ROOT / "grafana/dashboards").glob("*.json"))
    for name, (source, mutate, _) in MUTANTS.items():
        model = copy.deepcopy(committed[source])
        mutate(model)
        path = tmp / f"mutant-{name}.json"
        path.write_text(json.dumps(model, indent=2))
        files.append(path)
    code, body = validate(node, files)
    assert code == 1, "mutants are in the run, so the validator must exit 1"
    body["by_name"] = {Path(d["file"]).name: d for d in body["dashboards"]}
    return body


def test_validates_against_the_compose_images_grafana_version(report: dict[str, Any]) -> None:
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yaml").read_text())
    image = compose["services"]["grafana"]["image"]
    version = image.rsplit(":", 1)[1]
    assert report["schema"] == f"@grafana/schema@{version}", image
    lock = json.loads((REPO_ROOT / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/@grafana/schema"]["version"] == version


def test_every_committed_dashboard_is_valid(report: dict[str, Any]) -> None:
    names = sorted(load_dashboards())
    assert names == ["model-quality.json", "platform.json", "predictor.json"]
    for name in names:
        result = report["by_name"][name]
        assert result["valid"], f"{name}: {json.dumps(result['errors'], indent=1)}"


def test_only_the_legacy_prometheus_annotation_keys_are_exempt(report: dict[str, Any]) -> None:
    assert report["allowList"] == LEGACY_ANNOTATION_KEYS
    used = [path for name in load_dashboards() for path in report["by_name"][name]["allowListed"]]
    # The champion-promotion annotation is the one legacy Prometheus annotation, and uses all five.
    assert sorted(path.rsplit("/", 1)[1] for path in used) == sorted(LEGACY_ANNOTATION_KEYS)
    assert all(re.fullmatch(r"/annotations/list/\d+/\w+", path) for path in used), used


def test_dashboards_are_at_the_schema_version_grafana_writes(report: dict[str, Any]) -> None:
    """Grafana migrates an older schemaVersion on every load; ours is the one 11.6 writes."""
    for name, dash in load_dashboards().items():
        assert dash["schemaVersion"] == report["latestSchemaVersion"], name


@pytest.mark.parametrize("mutant", sorted(MUTANTS))
def test_mutant_fails_the_schema_check(report: dict[str, Any], mutant: str) -> None:
    pointer, message = MUTANTS[mutant][2]
    result = report["by_name"][f"mutant-{mutant}.json"]
    assert not result["valid"]
    found = [(e["path"], e["message"]) for e in result["errors"]]
    assert any(path == pointer and message in text for path, text in found), found
    if mutant in EXACT:
        assert found == [(pointer, message)], "one mistake, one error"


# Issue 13's two named mutants: the check reports exactly the mistake, nothing else.
EXACT = {"gridpos-w-string", "no-schema-version"}
