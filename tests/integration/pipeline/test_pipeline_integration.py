"""The pipeline against a real MLflow server: registration, aliases, gate, rollback, lock, failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from mlstack import registry
from mlstack.config import Config
from mlstack.contract import FAIL_STAGE_ENV
from mlstack.deployment import RuntimeActionError
from mlstack.pipeline import Options, Pipeline, PipelineError, pipeline_lock
from tests.support.mlflow_server import MlflowServer
from tests.support.net import free_port
from tests.support.pipeline import NoServicesRuntime, isolated_config, run_training

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]
WEAK_CANDIDATE = [
    {"name": "weak", "estimator": "LogisticRegression", "scale": False, "params": {"C": 1e-7, "max_iter": 50}}
]


def aliases(client: MlflowClient, config: Config) -> tuple[str | None, str | None]:
    champ = registry.champion_version(client, config)
    chall = registry.challenger_version(client, config)
    return (champ.version if champ else None, chall.version if chall else None)


def test_full_run_registers_with_both_aliases_and_lineage(
    shared_mlflow: MlflowServer, unique_names: dict[str, Any], tmp_path: Path
) -> None:
    config = isolated_config(shared_mlflow.url, tmp_path / "state", **unique_names)
    state = run_training(config, trigger="push", build_id="jenkins-42")
    client = registry.make_client(config)
    assert state.promoted and state.registered_version == "1"
    assert aliases(client, config) == ("1", "1")

    version = client.get_model_version(config.project.registered_model, "1")
    for tag in ("git_sha", "data_hash", "pipeline_id", "trigger", "onnx_parity", "gate"):
        assert version.tags.get(tag), tag
    assert version.tags["trigger"] == "push" and version.tags["pipeline_id"] == "jenkins-42"
    assert version.run_id
    run = client.get_run(version.run_id)
    for metric in (
        "accuracy",
        "precision_weighted",
        "recall_weighted",
        "f1_weighted",
        "f1_class_0",
        "gate.challenger_score",
    ):
        assert metric in run.data.metrics, metric
    artifacts = {a.path for a in client.list_artifacts(version.run_id)}
    assert {
        "confusion_matrix.png",
        "classification_report.txt",
        "feature_schema.json",
        "effective_config.yaml",
        "gate.json",
        "reference",
        "onnx",
    } <= artifacts
    assert run.data.tags["data_hash"] == state.data_hash
    gate_report = json.loads((tmp_path / "state/reports/gate.json").read_text())
    assert gate_report["promote"] and gate_report["champion_version"] is None

    moves = registry.history(client, config.project.registered_model)
    assert [(m.alias, m.from_version, m.to_version) for m in moves] == [
        ("challenger", None, "1"),
        ("champion", None, "1"),
    ]


def test_worse_candidates_leave_the_champion(
    shared_mlflow: MlflowServer, unique_names: dict[str, Any], tmp_path: Path
) -> None:
    config = isolated_config(shared_mlflow.url, tmp_path / "state", **unique_names)
    run_training(config)
    weak = isolated_config(
        shared_mlflow.url,
        tmp_path / "state",
        **unique_names,
        models=[],
        **{"training.candidates": WEAK_CANDIDATE},
    )
    state = run_training(weak)
    assert not state.promoted and state.gate is not None and not state.gate.promote
    assert aliases(registry.make_client(config), config) == ("1", "2")


def test_rollback_and_history(
    shared_mlflow: MlflowServer, unique_names: dict[str, Any], tmp_path: Path
) -> None:
    config = isolated_config(
        shared_mlflow.url, tmp_path / "state", **unique_names, models=["logistic_regression"]
    )
    for _ in range(3):
        run_training(config, force=True)
    client = registry.make_client(config)
    assert aliases(client, config)[0] == "3"
    move = registry.rollback(client, config)
    assert (move.from_version, move.to_version) == ("3", "2")
    registry.rollback(client, config, to="1", reason="bad release")
    assert aliases(client, config)[0] == "1"
    champion_moves = [
        m for m in registry.history(client, config.project.registered_model) if m.alias == "champion"
    ]
    assert [(m.from_version, m.to_version) for m in champion_moves] == [
        (None, "1"),
        ("1", "2"),
        ("2", "3"),
        ("3", "2"),
        ("2", "1"),
    ]
    assert champion_moves[-1].reason == "bad release" and champion_moves[-1].by
    with pytest.raises(registry.RegistryError, match="no version 99"):
        registry.rollback(client, config, to="99")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlstack.cli",
            "registry",
            "history",
            "--tracking-uri",
            shared_mlflow.url,
            "--model-name",
            config.project.registered_model,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "bad release" in out.stdout and out.stdout.count("champion") == 5


@pytest.mark.parametrize("stage", ["validate-data", "train", "register", "gate", "promote"])
def test_a_failing_stage_leaves_the_champion(
    stage: str,
    shared_mlflow: MlflowServer,
    unique_names: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = isolated_config(
        shared_mlflow.url, tmp_path / "state", **unique_names, models=["logistic_regression"]
    )
    run_training(config)
    monkeypatch.setenv(FAIL_STAGE_ENV, stage)
    with pytest.raises(PipelineError, match=stage):
        run_training(config, force=True)
    assert aliases(registry.make_client(config), config)[0] == "1"


class FailingHealthcheck(NoServicesRuntime):
    def healthcheck(self, config: Config) -> dict[str, str]:
        raise RuntimeActionError("api: /readyz answered 503")


def test_failed_healthcheck_after_promotion_rolls_back(
    shared_mlflow: MlflowServer, unique_names: dict[str, Any], tmp_path: Path
) -> None:
    config = isolated_config(
        shared_mlflow.url, tmp_path / "state", **unique_names, models=["logistic_regression"]
    )
    run_training(config)
    pipeline = Pipeline(config, Options(force=True), FailingHealthcheck())
    pipeline.new_run()
    with pytest.raises(PipelineError, match="healthcheck"):
        pipeline.run_stages(
            ["validate-data", "train", "register", "gate", "approve", "promote", "deploy", "healthcheck"]
        )
    assert pipeline.state.promoted and pipeline.state.rolled_back
    client = registry.make_client(config)
    assert aliases(client, config)[0] == "1"
    assert (
        registry.history(client, config.project.registered_model)[-1].reason
        == "auto-rollback: healthcheck failed"
    )


def test_mlflow_down_fails_fast_and_names_it(tmp_path: Path) -> None:
    config = isolated_config(f"http://127.0.0.1:{free_port()}", tmp_path / "state")
    with pytest.raises(PipelineError, match=r"validate-data.*not reachable.*nothing changed"):
        run_training(config)


def cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlstack.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=REPO,
        timeout=timeout,
    )


def test_a_concurrent_run_is_refused_by_the_lock(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with pipeline_lock(state):
        result = cli("run", "--set", f"services.state_dir={state}", "--tracking-uri", "http://127.0.0.1:9")
    assert result.returncode == 3
    assert "another pipeline run is in progress" in result.stderr


def test_approval_quarantines_until_approved(
    shared_mlflow: MlflowServer, unique_names: dict[str, Any], tmp_path: Path
) -> None:
    config = isolated_config(
        shared_mlflow.url, tmp_path / "state", **unique_names, models=["logistic_regression"]
    )
    run_training(config)
    gated = isolated_config(
        shared_mlflow.url,
        tmp_path / "state",
        **unique_names,
        models=["logistic_regression"],
        **{"gate.require_approval": True},
    )
    state = run_training(gated, force=True)
    assert state.awaiting_approval and not state.promoted
    client = registry.make_client(config)
    assert aliases(client, config) == ("1", "2")
    result = cli(
        "approve", "2", "--tracking-uri", shared_mlflow.url, "--model-name", config.project.registered_model
    )
    assert result.returncode == 0, result.stderr
    assert aliases(client, config)[0] == "2"
    state = run_training(gated, force=True)
    result = cli(
        "reject", "3", "--tracking-uri", shared_mlflow.url, "--model-name", config.project.registered_model
    )
    assert result.returncode == 0, result.stderr
    assert aliases(client, config) == ("2", None)
    reasons = [m.reason for m in registry.history(client, config.project.registered_model)]
    assert "approved" in reasons and "v3 rejected" in reasons
