"""Docker/compose helpers for the compose lint tests and the Docker end-to-end test."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from pathlib import Path

import pytest

from mlstack.config import REPO_ROOT
from mlstack.contract import REQUIRED_SECRETS
from tests.support.binaries import in_ci

COMPOSE_FILE = REPO_ROOT / "docker-compose.yaml"
DOCKER_SCAFFOLDING = REPO_ROOT / "tests" / "docker"


def write_env_file(path: Path, omit: tuple[str, ...] = (), **extra: str) -> dict[str, str]:
    """Write a compose env file with a fresh random value for every required secret (minus `omit`)."""
    values = {name: secrets.token_urlsafe(16) for name in REQUIRED_SECRETS if name not in omit}
    values.update(extra)
    path.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    return values


def compose_implementations() -> list[list[str]]:
    """Every compose CLI installed here: `docker-compose` (v1) and/or `docker compose` (v2)."""
    found: list[list[str]] = []
    if shutil.which("docker-compose"):
        found.append(["docker-compose"])
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            found.append(["docker", "compose"])
    return found


def docker_reachable() -> bool:
    """True when `docker info` answers (a running engine)."""
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "info"], capture_output=True, check=False, timeout=60).returncode == 0


def require_docker_engine() -> None:
    """Skip locally without a Docker engine; in CI start one (tests/docker/start-dockerd.sh) or fail."""
    if docker_reachable():
        return
    if in_ci():
        script = DOCKER_SCAFFOLDING / "start-dockerd.sh"
        started = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=False)
        if started.returncode == 0 and docker_reachable():
            return
        pytest.fail(f"CI needs a Docker engine and none could be started:\n{started.stderr}", pytrace=False)
    pytest.skip("no Docker engine reachable (start one: bash tests/docker/start-dockerd.sh)")
