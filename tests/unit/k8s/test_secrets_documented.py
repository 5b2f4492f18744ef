"""docs/kubernetes.md lists every Secret the manifests may reference (mlstack.runtime.k8s.SECRETS)."""

from __future__ import annotations

import re

from mlstack.config import REPO_ROOT
from mlstack.runtime.k8s import DEV_PREDICTION_STORE_URL, OVERLAYS, SECRETS

DOC = (REPO_ROOT / "docs" / "kubernetes.md").read_text()
ROW = re.compile(
    r"^\| `(?P<name>[a-z0-9-]+)` \| `(?P<key>[a-z0-9-]+)` \| (?P<holds>.+?) \| (?P<overlays>[a-z, ]+) \|$"
)


def documented_rows() -> dict[tuple[str, str], tuple[str, tuple[str, ...]]]:
    section = DOC.split("## Secrets", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        match = ROW.match(line)
        if match:
            overlays = tuple(o.strip() for o in match["overlays"].split(","))
            rows[(match["name"], match["key"])] = (match["holds"], overlays)
    return rows


def test_the_secrets_table_lists_exactly_the_defined_secrets_and_keys() -> None:
    defined = {(spec.name, item) for spec in SECRETS for item in spec.keys}
    assert set(documented_rows()) == defined


def test_each_row_says_what_the_key_holds_and_where_it_is_used() -> None:
    rows = documented_rows()
    for spec in SECRETS:
        assert set(spec.overlays) <= set(OVERLAYS)
        for item, holds in spec.keys.items():
            text, overlays = rows[(spec.name, item)]
            assert text.replace("`", "") == holds.replace("`", ""), (spec.name, item)
            assert set(spec.overlays_of(item)) <= set(spec.overlays), (spec.name, item)
            assert overlays == spec.overlays_of(item), (spec.name, item)


def test_the_dev_commands_create_the_pipeline_pods_prediction_store_url() -> None:
    """In dev the pipeline pods' URL must be the in-cluster one the dev predictor writes to."""
    section = DOC.split("## Secrets", 1)[1].split("\n## ", 1)[0]
    commands = section.replace("\\\n", " ").splitlines()
    creates = [c for c in commands if "create secret generic mlstack-postgres-external" in c]
    dev = [c for c in creates if c.endswith("# dev")]
    assert len(dev) == 1, commands
    assert f"--from-literal=prediction-store-url={DEV_PREDICTION_STORE_URL} " in dev[0]
    assert "mlflow-backend-store-uri" not in dev[0]  # dev's MLflow uses the in-cluster database directly
