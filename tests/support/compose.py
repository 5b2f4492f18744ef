"""Docker/compose helpers for the compose lint tests and the Docker end-to-end test."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from pathlib import Path

from mlstack.config import REPO_ROOT
from mlstack.contract import REQUIRED_SECRETS
from tests.support.binaries import in_ci, skip_or_fail

COMPOSE_FILE = REPO_ROOT / "docker-compose.yaml"
DOCKER_SCAFFOLDING = REPO_ROOT / "tests" / "docker"


def write_env_file(path: Path, omit: tuple[str, ...] = (), **extra: str) -> dict[str, str]:
    """Write a compose env file with a fresh random value for every required secret (minus `omit`)."""
    values = {name: secrets.token_urlsafe(16) for name in REQUIRED_SECRETS if name not in omit}
    values.update(extra)
    path.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    return values


NO_COMPOSE = (
    "no working compose CLI: `docker compose version` fails (no compose plugin) and `docker-compose` "
    "is not installed or does not run (.ci/run installs docker-compose)"
)


def _works(argv: list[str]) -> bool:
    """True when `argv + ["version"]` runs and exits 0: installed is not enough, it must work."""
    try:
        probe = subprocess.run([*argv, "version"], capture_output=True, check=False, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def compose_implementations() -> list[list[str]]:
    """Every WORKING compose CLI here: `docker-compose` (v1) and/or `docker compose` (v2 plugin).

    A bare `docker` client is not a compose CLI: distribution packages and remote-engine setups often
    ship the client without the compose plugin, so each candidate is run (`... version`), not looked up.
    """
    candidates = []
    if shutil.which("docker-compose"):
        candidates.append(["docker-compose"])
    if shutil.which("docker"):
        candidates.append(["docker", "compose"])
    return [argv for argv in candidates if _works(argv)]


def require_compose() -> list[str]:
    """The first working compose CLI; skip (locally) or fail (CI) with the reason when there is none."""
    __tracebackhide__ = True  # report the skip or failure at the test that asked
    found = compose_implementations()
    if not found:
        skip_or_fail(NO_COMPOSE)
    return found[0]


def docker_reachable() -> bool:
    """True when `docker info` answers (a running engine)."""
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "info"], capture_output=True, check=False, timeout=60).returncode == 0


def require_docker_engine() -> None:
    """A Docker engine and a working compose CLI (the stack is driven through compose).

    Skip locally when either is missing; in CI start an engine (tests/docker/start-dockerd.sh) or fail.
    """
    __tracebackhide__ = True  # report the skip or failure at the test that asked
    require_compose()
    if docker_reachable():
        return
    if not in_ci():
        skip_or_fail("no Docker engine reachable (start one: bash tests/docker/start-dockerd.sh)")
    script = DOCKER_SCAFFOLDING / "start-dockerd.sh"
    started = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=False)
    if started.returncode == 0 and docker_reachable():
        return
    skip_or_fail(f"CI needs a Docker engine and none could be started:\n{started.stderr}")


# What build-standins.sh says when the machine lacks a prerequisite (not when a build breaks).
STANDIN_PREREQUISITES = ("debootstrap missing", "no bookworm apt source found")


def build_standins() -> None:
    """Build (or reuse, cached by tag) the offline stand-in base images the compose stack needs.

    A missing prerequisite (debootstrap, a bookworm apt source) skips locally and fails in CI; a build
    that breaks is a test failure either way.
    """
    __tracebackhide__ = True  # report the skip or failure at the test that asked
    built = subprocess.run(
        ["bash", str(DOCKER_SCAFFOLDING / "build-standins.sh")], capture_output=True, text=True, check=False
    )
    if built.returncode != 0:
        missing = [
            line for line in built.stderr.splitlines() if any(p in line for p in STANDIN_PREREQUISITES)
        ]
        if missing:
            skip_or_fail(f"stand-in images cannot be built here: {missing[0].strip()}")
    assert built.returncode == 0, f"stand-in images failed to build:\n{built.stderr[-4000:]}"
