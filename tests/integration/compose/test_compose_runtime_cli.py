"""ComposeRuntime with the real compose CLI (no engine needed): detection, project scoping, errors.

The pure-Python side of ComposeRuntime is in tests/unit/runtime/test_compose_runtime.py.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mlstack.config import REPO_ROOT, Config, load_config
from mlstack.deployment import RuntimeActionError
from mlstack.runtime.compose import ComposeRuntime, compose_command
from tests.support.compose import require_compose, write_env_file


@pytest.fixture
def config() -> Config:
    return load_config(overrides={"services.api_port": 17654, "services.mlflow_port": 15000})


def test_compose_cli_is_detected_and_scoped_to_the_project(config: Config, tmp_path: Path) -> None:
    require_compose()
    command = compose_command()
    assert subprocess.run([*command, "version"], capture_output=True, check=False).returncode == 0
    runtime = ComposeRuntime(config, project_name="mlstack-t", env_file=tmp_path / ".env")
    args = runtime.compose_args("train")
    assert args[: len(command)] == command
    assert args[len(command) :] == [
        "-f",
        str(runtime.project_dir / "docker-compose.yaml"),
        "-p",
        "mlstack-t",
        "--env-file",
        str(tmp_path / ".env"),
        "--profile",
        "train",
    ]


def test_a_failing_compose_command_names_the_missing_secret(config: Config, tmp_path: Path) -> None:
    require_compose()
    env_file = tmp_path / ".env"
    write_env_file(env_file, omit=("MLFLOW_DB_PASSWORD",))
    runtime = ComposeRuntime(config, project_name="mlstack-t", env_file=env_file)
    with pytest.raises(RuntimeActionError, match="MLFLOW_DB_PASSWORD is not set") as failure:
        runtime.compose(config, "config", "-q")
    assert "`compose config -q` failed" in str(failure.value)
    write_env_file(env_file)
    assert runtime.compose(config, "config", "-q").returncode == 0


def test_project_dir_follows_the_jenkins_mount(config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    require_compose()  # compose_args() starts with the detected compose CLI
    monkeypatch.delenv("MLSTACK_COMPOSE_PROJECT_DIR", raising=False)
    assert ComposeRuntime(config).project_dir == REPO_ROOT
    monkeypatch.setenv("MLSTACK_COMPOSE_PROJECT_DIR", "/srv/mlstack")
    runtime = ComposeRuntime(config)
    assert runtime.project_dir == Path("/srv/mlstack")
    assert "/srv/mlstack/docker-compose.yaml" in runtime.compose_args()
