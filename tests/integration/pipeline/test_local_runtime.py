"""`make pipeline` end to end: the CLI's local runtime starts real services, trains, promotes, serves."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from mlstack.contract import FEEDBACK_TOKEN_ENV, STATE_FEEDBACK_TOKEN, STATE_PIPELINE_LOG
from tests.support.net import free_port

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def local_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """An isolated local runtime: own state dir and free ports; a developer's stack is untouched."""
    env = {
        **{k: v for k, v in os.environ.items() if k != FEEDBACK_TOKEN_ENV},
        "MLSTACK__SERVICES__STATE_DIR": str(tmp_path / "state"),
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}",
        "MLSTACK__API__RELOAD_INTERVAL_S": "1",
        "MLSTACK__EXPORTER__REFRESH_INTERVAL_S": "2",
        **{
            f"MLSTACK__SERVICES__{name}_PORT": str(free_port())
            for name in ("API", "EXPORTER", "PROMETHEUS", "ALERTMANAGER", "TRIGGER")
        },
    }
    try:
        yield env
    finally:
        subprocess.run(
            [sys.executable, "-m", "mlstack.cli", "services", "stop"],
            env=env,
            cwd=REPO,
            capture_output=True,
            timeout=120,
        )


def mlstack(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlstack.cli", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_pipeline_runs_twice_and_serves_the_champion(local_env: dict[str, str]) -> None:
    first = mlstack(local_env, "run", "--models", "logistic_regression,random_forest")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "champion: wine-classifier v1" in first.stdout
    for stage in ("validate-data", "train", "register", "gate", "promote", "deploy", "healthcheck", "smoke"):
        assert f"  {stage}" in first.stdout, stage
    assert "logistic_regression" in first.stdout and "gate: promote" in first.stdout

    # Output a person can read: the project's lines only; the libraries' go to the log file.
    log_file = Path(local_env["MLSTACK__SERVICES__STATE_DIR"]) / STATE_PIPELINE_LOG
    terminal = first.stdout + first.stderr
    for noise in ("Downloading artifacts", "it/s]", "cloudpickle", "View run", "Created version"):
        assert noise not in terminal, noise
    assert "[ 4/12] train" in first.stdout and "[12/12] drift-report" in first.stdout
    assert f"library output and the full log: {log_file}" in first.stdout
    logged = log_file.read_text()
    assert "cloudpickle" in logged and "View run" in logged  # diverted, not lost

    api = f"http://127.0.0.1:{local_env['MLSTACK__SERVICES__API_PORT']}"
    version = requests.get(f"{api}/version", timeout=5).json()
    assert str(version["model"]["version"]) == "1"

    # First run: the feedback token is generated into the state dir (0600) and the run says where.
    token_file = Path(local_env["MLSTACK__SERVICES__STATE_DIR"]) / STATE_FEEDBACK_TOKEN
    assert f"feedback token: generated into {token_file}" in first.stdout
    assert token_file.stat().st_mode & 0o777 == 0o600
    label = {"prediction_id": "not-logged", "true_label": 0}
    assert requests.post(f"{api}/feedback", json=label, timeout=5).status_code == 401
    authorised = {"Authorization": f"Bearer {token_file.read_text().strip()}"}
    assert requests.post(f"{api}/feedback", json=label, headers=authorised, timeout=5).status_code == 404

    # A second run retrains and the gate decides. Its candidate set differs from the first run's (a new
    # training config), so an equal score is a tie on new inputs: the champion moves to the new version
    # and the predictor follows. (Unchanged inputs keep the champion: see test_gate_ties.py.)
    second = mlstack(
        local_env, "run", "--models", "logistic_regression", "--min-improvement", "0", "--verbose"
    )
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "View run" in second.stdout and "cloudpickle" in second.stderr  # --verbose shows everything
    assert "mlflow: reused" in second.stdout or "reused" in second.stdout
    assert "champion: wine-classifier v2" in second.stdout
    assert "feedback token: generated" not in second.stdout  # generated once, then reused

    status = mlstack(local_env, "services", "status")
    assert "mlflow" in status.stdout and "api" in status.stdout
    stop = mlstack(local_env, "services", "stop")
    assert "stopped api" in stop.stdout and "stopped mlflow" in stop.stdout
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{api}/healthz", timeout=2)


def test_a_failing_stage_exits_non_zero_and_names_it(local_env: dict[str, str]) -> None:
    result = mlstack({**local_env, "MLSTACK_FAIL_STAGE": "train"}, "run", "--models", "logistic_regression")
    assert result.returncode == 1
    assert "stage 'train' failed" in result.stderr
    # The failure is on the terminal, with the end of the library log that led to it.
    assert "FAILED: fault injected by MLSTACK_FAIL_STAGE=train" in result.stdout
    assert "lines of " in result.stderr and "===== stage train" in result.stderr
    assert "champion: wine-classifier v-" in result.stdout
