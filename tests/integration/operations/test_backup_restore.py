"""scripts/backup.sh and scripts/restore.sh, for real: back up, wipe, restore, and the champion serves again.

Two flavours: the local runtime's (MLflow on SQLite, artifacts dir, SQLite prediction store) and the
compose stack's storage (MLflow and the prediction store on PostgreSQL, a throwaway cluster here;
the artifact volume is a directory). After the restore a fresh predictor serves the same champion
with the same answers, and the predictions logged before the backup are in the store again.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from mlflow import MlflowClient

from mlstack.config import REPO_ROOT, Config
from mlstack.store import PredictionStore
from tests.support.binaries import require_binary
from tests.support.mlflow_server import MlflowServer
from tests.support.net import free_port
from tests.support.pipeline import isolated_config, run_training
from tests.support.postgres import PostgresCluster, postgres_cluster
from tests.support.services import run_api
from tests.support.traffic import record_numbers

pytestmark = pytest.mark.integration
SCRIPTS = REPO_ROOT / "scripts"
PREDICTIONS = 25


def script(name: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    for tool in ("bash", "tar", "sha256sum"):
        require_binary(tool)
    result = subprocess.run(
        ["bash", str(SCRIPTS / name), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"{name} exited {result.returncode}:\n{result.stdout}{result.stderr}"
    return result


@dataclass
class Served:
    """What the predictor served before the backup."""

    config: Config
    version: str
    ids: list[str]
    instance: dict[str, float]
    answer: dict[str, Any]


def serve_and_log(store_url: str, tracking_uri: str, workdir: Path) -> Served:
    """Train and promote v1, serve it and log predictions (graceful stop: the log is flushed)."""
    config = isolated_config(
        tracking_uri, workdir / "state", models=["logistic_regression"], **{"prediction_store.url": store_url}
    )
    state = run_training(config)
    assert state.promoted, state.results
    with run_api(config, workdir / "api-before") as api:
        schema = requests.get(f"{api.url}/schema", timeout=5).json()
        instance = {f["name"]: f["typical"] for f in schema["features"]}
        ids = []
        for _ in range(PREDICTIONS):
            response = requests.post(f"{api.url}/predict", json={"instances": [instance]}, timeout=10)
            assert response.status_code == 200, response.text
            ids.append(response.json()["predictions"][0]["id"])
        api.stop()
    return Served(config, str(state.registered_version), ids, instance, response.json())


def assert_serves_again(before: Served, tracking_uri: str, workdir: Path) -> dict[str, int]:
    client = MlflowClient(tracking_uri=tracking_uri)
    assert str(client.get_model_version_by_alias("wine-classifier", "champion").version) == before.version
    with run_api(before.config, workdir / "api-after") as api:
        response = requests.post(f"{api.url}/predict", json={"instances": [before.instance]}, timeout=10)
        assert response.status_code == 200, response.text
        after = response.json()
        assert after["model"] == before.answer["model"]
        assert after["predictions"][0]["probabilities"] == before.answer["predictions"][0]["probabilities"]
        # A prediction logged before the backup takes feedback: it is in the restored store.
        label = before.answer["predictions"][0]["label"]
        feedback = requests.post(
            f"{api.url}/feedback",
            json={"prediction_id": before.ids[0], "true_label": label},
            headers=api.labeller,
            timeout=10,
        )
        assert feedback.status_code == 200, feedback.text
        api.stop()
    store = PredictionStore(before.config.prediction_store_url)
    try:
        stored = store.prediction_ids()
    finally:
        store.dispose()
    assert set(before.ids) <= stored
    return {"predictions_before": len(before.ids), "restored": len(set(before.ids) & stored)}


def test_sqlite_flavour_backup_wipe_restore(tmp_path: Path) -> None:
    root = tmp_path / "mlflow"
    predictions = tmp_path / "predictions.db"
    paths: list[str | Path] = [
        "--mlflow-db",
        root / "mlflow.db",
        "--artifacts",
        root / "artifacts",
        "--predictions",
        predictions,
    ]
    server = MlflowServer(root=root, port=free_port()).start()
    try:
        before = serve_and_log(f"sqlite:///{predictions}", server.url, tmp_path)
        script("backup.sh", *paths, tmp_path / "backup")  # MLflow keeps running: an online backup
        server.stop()
        (root / "mlflow.db").unlink()
        shutil.rmtree(root / "artifacts")
        predictions.unlink()
        script("restore.sh", *paths, tmp_path / "backup")
        server.start()
        numbers = assert_serves_again(before, server.url, tmp_path)
    finally:
        server.stop()
    record_numbers("backup_restore_sqlite", numbers)


def test_restore_refuses_a_corrupted_backup(tmp_path: Path) -> None:
    target = tmp_path / "state"
    (target / "mlartifacts").mkdir(parents=True)
    (target / "mlartifacts" / "a.txt").write_text("artifact")
    with sqlite3.connect(target / "mlflow.db") as db:
        db.execute("create table t(x)")
    script("backup.sh", "--state-dir", target, tmp_path / "backup")
    with (tmp_path / "backup" / "mlartifacts.tar.gz").open("ab") as archive:
        archive.write(b"tampered")
    result = subprocess.run(
        ["bash", str(SCRIPTS / "restore.sh"), "--state-dir", str(target), str(tmp_path / "backup")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0 and "checksum mismatch" in result.stderr
    assert (target / "mlflow.db").exists() and (target / "mlartifacts" / "a.txt").exists()  # untouched


def test_postgres_flavour_backup_wipe_restore(tmp_path: Path) -> None:
    require_binary("pg_dump")
    require_binary("pg_restore")
    with postgres_cluster() as cluster:
        numbers = postgres_round_trip(cluster, tmp_path)
    record_numbers("backup_restore_postgres", numbers)


def postgres_round_trip(cluster: PostgresCluster, tmp_path: Path) -> dict[str, int]:
    cluster.create_database("mlflow")
    cluster.create_database("predictions")
    root = tmp_path / "mlflow"
    server = MlflowServer(root=root, port=free_port(), backend_uri=cluster.url("mlflow")).start()
    paths: list[str | Path] = [
        "--mlflow-url",
        cluster.libpq_url("mlflow"),
        "--artifacts",
        root / "artifacts",
        "--predictions",
        cluster.libpq_url("predictions"),
    ]
    try:
        before = serve_and_log(cluster.url("predictions"), server.url, tmp_path)
        script("backup.sh", *paths, tmp_path / "backup")
        server.stop()
        for database in ("mlflow", "predictions"):  # the volume is lost; a fresh one has empty databases
            cluster.drop_database(database)
            cluster.create_database(database)
        shutil.rmtree(root / "artifacts")
        script("restore.sh", *paths, tmp_path / "backup")
        server.start()
        return assert_serves_again(before, server.url, tmp_path)
    finally:
        server.stop()


def test_operations_doc_has_a_runbook_per_alert_and_cites_real_tests() -> None:
    operations = (REPO_ROOT / "docs/operations.md").read_text()
    rules = yaml.safe_load((REPO_ROOT / "prometheus/rules/alerts.yml").read_text())
    alerts = [rule["alert"] for group in rules["groups"] for rule in group["rules"] if "alert" in rule]
    assert alerts
    missing = [name for name in alerts if f"\n### {name}\n" not in operations]
    assert missing == [], f"docs/operations.md#runbooks lacks {missing}"
    # Every test the page cites as proof exists.
    cited = re.findall(r"`(tests/(?:\w+/)*test_\w+\.py)(?:::(test_\w+))?`", operations)
    assert len(cited) > 10
    assert not re.findall(r"`(test_\w+\.py)", operations), "cite tests by their path under tests/"
    for module, function in cited:
        source = REPO_ROOT / module
        assert source.exists(), module
        if function:
            assert f"def {function}(" in source.read_text(), f"{module}::{function}"
