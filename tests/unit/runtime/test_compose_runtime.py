"""ComposeRuntime without containers or a compose CLI: ports, URLs, exclusions, secrets.

With the real compose CLI (detection, project scoping, error reporting): tests/integration/compose/
test_compose_runtime_cli.py. The container side (build, start_platform, deploy, healthcheck, stop on a
real engine) is exercised by tests/e2e/test_docker_e2e.py.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from mlstack.config import Config, load_config
from mlstack.contract import COMPOSE_EXCLUDE_ENV as EXCLUDE_ENV
from mlstack.contract import REQUIRED_SECRETS
from mlstack.deployment import Runtime, RuntimeActionError
from mlstack.runtime.compose import (
    ComposeRuntime,
    missing_secrets,
    port_env,
)
from tests.support.compose import write_env_file


@pytest.fixture
def config() -> Config:
    return load_config(overrides={"services.api_port": 17654, "services.mlflow_port": 15000})


def test_runtime_implements_the_protocol(config: Config) -> None:
    runtime = ComposeRuntime(config)
    assert runtime.name == "compose"
    for name, member in inspect.getmembers(Runtime, inspect.isfunction):
        if name.startswith("_"):
            continue
        expected = list(inspect.signature(member).parameters)[1:]  # without self
        assert list(inspect.signature(getattr(runtime, name)).parameters) == expected, name


def test_published_ports_follow_the_config(config: Config) -> None:
    env = port_env(config)
    assert env["API_HOST_PORT"] == "17654"
    assert env["MLFLOW_HOST_PORT"] == "15000"
    assert env["PROMETHEUS_HOST_PORT"] == str(config.services.prometheus_port)
    urls = ComposeRuntime(config).service_urls(config)
    assert urls["api"] == "http://127.0.0.1:17654"
    assert urls["mlflow"] == "http://127.0.0.1:15000"
    assert all(url.startswith("http://127.0.0.1:") for url in urls.values())


def test_grafana_can_be_excluded_by_flag_or_env(config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    assert "grafana" not in ComposeRuntime(config, exclude=["grafana"]).service_urls(config)
    monkeypatch.setenv(EXCLUDE_ENV, "grafana")
    runtime = ComposeRuntime(config)
    assert "grafana" not in runtime.platform_services()
    assert runtime.platform_services() == ["postgres", "mlflow", "prometheus", "alertmanager"]
    monkeypatch.delenv(EXCLUDE_ENV)
    assert "grafana" in ComposeRuntime(config).platform_services()


def test_only_optional_services_can_be_excluded(config: Config) -> None:
    with pytest.raises(RuntimeActionError, match=r"cannot exclude \['postgres'\]"):
        ComposeRuntime(config, exclude=["postgres"])


def test_project_name_defaults_and_env(config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COMPOSE_PROJECT_NAME", raising=False)
    assert ComposeRuntime(config).project_name == "mlstack"
    monkeypatch.setenv("COMPOSE_PROJECT_NAME", "other")
    assert ComposeRuntime(config).project_name == "other"
    assert ComposeRuntime(config, project_name="mine").project_name == "mine"


def test_missing_secrets_reads_the_env_file_and_the_environment(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    assert missing_secrets(env_file, environ={}) == list(REQUIRED_SECRETS)
    write_env_file(env_file, omit=("GF_SECURITY_ADMIN_PASSWORD",), MLSTACK_ADMIN_TOKEN="")
    assert missing_secrets(env_file, environ={}) == ["GF_SECURITY_ADMIN_PASSWORD", "MLSTACK_ADMIN_TOKEN"]
    assert (
        missing_secrets(env_file, environ={"GF_SECURITY_ADMIN_PASSWORD": "x", "MLSTACK_ADMIN_TOKEN": "y"})
        == []
    )
    # As in compose, a variable set but empty in the environment wins over the file.
    write_env_file(env_file)
    assert missing_secrets(env_file, environ={"POSTGRES_PASSWORD": ""}) == ["POSTGRES_PASSWORD"]


def test_inside_the_compose_network_services_are_reached_by_name(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLSTACK_COMPOSE_IN_NETWORK", "1")
    urls = ComposeRuntime(config, exclude=["grafana"]).service_urls(config)
    assert urls == {
        "mlflow": "http://mlflow:5000",
        "api": "http://api:7654",
        "exporter": "http://exporter:8000",
        "prometheus": "http://prometheus:9090",
        "alertmanager": "http://alertmanager:9093",
    }
