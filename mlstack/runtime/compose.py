"""Compose runtime: the pipeline's platform stages acting on this compose project's containers."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from mlstack import contract
from mlstack.config import REPO_ROOT, Config
from mlstack.contract import (
    COMPOSE_EXCLUDE_ENV,
    COMPOSE_IN_NETWORK_ENV,
    COMPOSE_PROJECT_DIR_ENV,
    COMPOSE_PROJECT_NAME_ENV,
    CONTAINER_PORTS,
    HTTP_SERVICES,
    REQUIRED_SECRETS,
)
from mlstack.deployment import RuntimeActionError
from mlstack.progress import report

log = logging.getLogger(__name__)

COMPOSE_FILE = "docker-compose.yaml"
DEFAULT_PROJECT = "mlstack"
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
ONEOFF_LABEL = "com.docker.compose.oneoff"

BASE_SERVICE = "base"
# Images built from this repository (Jenkins' image is built on its own: `make images`).
TRAINER_SERVICE = "trainer"
PROJECT_IMAGES: tuple[str, ...] = (
    contract.POSTGRES, contract.MLFLOW, TRAINER_SERVICE, contract.API, contract.EXPORTER,
)  # fmt: skip
PLATFORM_SERVICES: tuple[str, ...] = (
    contract.POSTGRES, contract.MLFLOW, contract.PROMETHEUS, contract.ALERTMANAGER, contract.GRAFANA,
)  # fmt: skip
APP_SERVICES: tuple[str, ...] = (contract.API, contract.EXPORTER)
# Services that can be left out (MLSTACK_COMPOSE_EXCLUDE=grafana): their images cannot be built or
# pulled on machines without a registry, such as CI's; their configuration is validated elsewhere.
OPTIONAL_SERVICES: frozenset[str] = frozenset({contract.GRAFANA})


@dataclass(frozen=True)
class HttpCheck:
    """One host-side HTTP check: GET `path` on a published port, judged by `ok`."""

    service: str
    path: str
    ok: Callable[[requests.Response], bool] = lambda r: r.status_code == 200


def _all_targets_up(response: requests.Response) -> bool:
    targets = response.json()["data"]["activeTargets"]
    return bool(targets) and all(t.get("health") == "up" for t in targets)


HTTP_CHECKS: tuple[HttpCheck, ...] = (
    HttpCheck(contract.MLFLOW, "/health"),
    HttpCheck(contract.API, contract.READYZ_PATH),
    HttpCheck(contract.EXPORTER, "/metrics"),
    HttpCheck(contract.ALERTMANAGER, "/-/healthy"),
    HttpCheck(contract.GRAFANA, "/api/health"),
    # Last: Prometheus only sees every target up once the others answer.
    HttpCheck(contract.PROMETHEUS, "/api/v1/targets", _all_targets_up),
)


def compose_command() -> list[str]:
    """`docker compose` (v2 plugin) when present, else `docker-compose` (v1); raise if neither."""
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy:
        return [legacy]
    raise RuntimeActionError(
        "neither `docker compose` nor `docker-compose` is installed (docs/containers.md)"
    )


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a compose .env file (comments and blank lines ignored)."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip().strip("'\"")
    return values


def missing_secrets(env_file: Path | None, environ: Mapping[str, str] | None = None) -> list[str]:
    """Required secrets that are neither in the environment nor in `env_file`, or are empty."""
    values = dict(read_env_file(env_file)) if env_file is not None and env_file.is_file() else {}
    values.update(os.environ if environ is None else environ)
    return [name for name in REQUIRED_SECRETS if not values.get(name)]


def host_ports(config: Config) -> dict[str, int]:
    """Host port of each published service, from `services.*_port` in the config."""
    return {name: int(getattr(config.services, f"{name}_port")) for name in HTTP_SERVICES}


def port_env(config: Config) -> dict[str, str]:
    """The `*_HOST_PORT` variables docker-compose.yaml publishes on, so compose and config agree."""
    return {f"{name.upper()}_HOST_PORT": str(port) for name, port in host_ports(config).items()}


class ComposeRuntime:
    """The stack as containers of one compose project (`--runtime compose`, `make up`)."""

    name = "compose"

    def __init__(
        self,
        config: Config,
        *,
        project_name: str | None = None,
        project_dir: Path | None = None,
        env_file: Path | None = None,
        exclude: Sequence[str] | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        """Args:
        config: the effective config (host ports come from `services.*_port`).
        project_name: compose project; default $COMPOSE_PROJECT_NAME or "mlstack".
        project_dir: directory holding docker-compose.yaml (and .env); default $MLSTACK_COMPOSE_PROJECT_DIR
            or the repository root.
        env_file: secrets file for compose (default: compose reads project_dir/.env).
        exclude: optional services to leave out; default from $MLSTACK_COMPOSE_EXCLUDE (e.g. grafana).
        extra_env: more variables for the compose CLI (tests).
        """
        self.project_name = project_name or os.environ.get(COMPOSE_PROJECT_NAME_ENV) or DEFAULT_PROJECT
        self.project_dir = project_dir or Path(os.environ.get(COMPOSE_PROJECT_DIR_ENV) or REPO_ROOT)
        self.env_file = env_file
        if exclude is None:
            exclude = [n.strip() for n in os.environ.get(COMPOSE_EXCLUDE_ENV, "").split(",") if n.strip()]
        unknown = sorted(set(exclude) - OPTIONAL_SERVICES)
        if unknown:
            raise RuntimeActionError(
                f"cannot exclude {unknown}: only {sorted(OPTIONAL_SERVICES)} are optional"
            )
        self.exclude = frozenset(exclude)
        self.extra_env = dict(extra_env or {})
        self.in_network = os.environ.get(COMPOSE_IN_NETWORK_ENV, "").lower() in {"1", "true", "yes"}
        self._compose: list[str] | None = None
        self._docker: Any = None
        del config  # the config is passed to every action; nothing is cached from it

    # -- plumbing ------------------------------------------------------------------------------
    def compose_args(self, *profiles: str) -> list[str]:
        """The compose CLI prefix for this project (file, project name, env file, profiles)."""
        if self._compose is None:
            self._compose = compose_command()
        args = [*self._compose, "-f", str(self.project_dir / COMPOSE_FILE), "-p", self.project_name]
        if self.env_file is not None:
            args += ["--env-file", str(self.env_file)]
        for profile in profiles:
            args += ["--profile", profile]
        return args

    def compose(
        self, config: Config, *args: str, profiles: Sequence[str] = (), check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run one compose command for this project; raise RuntimeActionError with its output on failure."""
        command = [*self.compose_args(*profiles), *args]
        env = {**os.environ, **port_env(config), **self.extra_env}
        log.info("compose: %s", " ".join(args))
        result = subprocess.run(
            command, cwd=self.project_dir, env=env, capture_output=True, text=True, check=False
        )
        if check and result.returncode != 0:
            output = (result.stdout + result.stderr).strip().splitlines()
            raise RuntimeActionError(
                f"`compose {' '.join(args)}` failed (exit {result.returncode}):\n" + "\n".join(output[-40:])
            )
        return result

    @property
    def docker(self) -> Any:
        """Docker SDK client (lazy, so building the runtime needs no engine)."""
        if self._docker is None:
            import docker

            try:
                self._docker = docker.from_env()
                self._docker.ping()
            except Exception as exc:
                raise RuntimeActionError(f"no Docker engine reachable: {exc}") from exc
        return self._docker

    def containers(self, service: str | None = None) -> list[Any]:
        """This project's containers (by compose label), optionally of one service."""
        labels = [f"{PROJECT_LABEL}={self.project_name}"]
        if service:
            labels.append(f"{SERVICE_LABEL}={service}")
        return list(self.docker.containers.list(all=True, filters={"label": labels}))

    def platform_services(self) -> list[str]:
        """Platform services this runtime starts (optional ones may be excluded)."""
        return [s for s in PLATFORM_SERVICES if s not in self.exclude]

    # -- Runtime protocol ----------------------------------------------------------------------
    def build(self, config: Config) -> str:
        started = time.monotonic()
        # The base image first: the service images start FROM it, and compose has no build order.
        self.compose(config, "build", BASE_SERVICE, profiles=["base"])
        self.compose(config, "build", *PROJECT_IMAGES, profiles=["train"])
        return f"built {BASE_SERVICE}, {', '.join(PROJECT_IMAGES)} in {time.monotonic() - started:.0f}s"

    def start_platform(self, config: Config) -> None:
        services = self.platform_services()
        running = {c.labels.get(SERVICE_LABEL) for c in self.containers() if c.status == "running"}
        self.compose(config, "up", "-d", *services)
        if "prometheus" in running:
            # Prometheus kept running: SIGHUP makes it read a re-rendered prometheus.yml.
            self.compose(config, "kill", "-s", "SIGHUP", "prometheus", check=False)
        self.wait_containers(services, config.services.healthcheck_timeout_s)
        for service in services:
            report(f"  {service}: healthy")

    def deploy(self, config: Config) -> None:
        # Only this project's api/exporter are recreated; the platform is left as it is.
        self.compose(config, "up", "-d", "--no-deps", "--force-recreate", *APP_SERVICES)
        for service in APP_SERVICES:
            report(f"  {service}: recreated")

    def healthcheck(self, config: Config) -> dict[str, str]:
        timeout = config.services.healthcheck_timeout_s
        deadline = time.monotonic() + timeout
        wanted = [*self.platform_services(), *APP_SERVICES]
        statuses = self.wait_containers(wanted, timeout)
        urls = self.service_urls(config)
        for check in HTTP_CHECKS:
            if check.service in self.exclude:
                continue
            url = urls[check.service] + check.path
            last = self._wait_http(url, check.ok, deadline)
            if last is not None:
                raise RuntimeActionError(
                    f"{check.service}: {url} not healthy after {timeout:.0f}s ({last})\n"
                    + self.logs(check.service)
                )
            statuses[check.service] = "healthy"
        for service in sorted(self.exclude):
            statuses[service] = f"skipped (excluded by {COMPOSE_EXCLUDE_ENV})"
        return statuses

    def service_urls(self, config: Config) -> dict[str, str]:
        if self.in_network:
            # Inside a container on the compose network (Jenkins): service names, container ports.
            return {
                name: f"http://{name}:{CONTAINER_PORTS[name]}"
                for name in HTTP_SERVICES
                if name not in self.exclude
            }
        return {
            name: f"http://{contract.LOOPBACK}:{port}"
            for name, port in host_ports(config).items()
            if name not in self.exclude
        }

    def stop(self, config: Config) -> None:
        # `down` keeps the named volumes (database, artifacts, dashboards state).
        self.compose(config, "down", "--remove-orphans")
        report(f"  compose project {self.project_name}: down (volumes kept)")

    # -- helpers -------------------------------------------------------------------------------
    def run_trainer(
        self, config: Config, args: Sequence[str] = (), env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run the one-shot trainer container (`model-training/`) with optional stage arguments."""
        env_args = [item for key, value in (env or {}).items() for item in ("-e", f"{key}={value}")]
        return self.compose(config, "run", "--rm", "-T", *env_args, "trainer", *args, profiles=["train"])

    def down(self, config: Config, volumes: bool = False) -> None:
        """Remove this project's containers and network (and its volumes when asked)."""
        args = ["down", "--remove-orphans"] + (["-v"] if volumes else [])
        self.compose(config, *args, profiles=["train"], check=False)

    def logs(self, service: str, tail: int = 40) -> str:
        """The last log lines of one service's containers."""
        lines = []
        for container in self.containers(service):
            text = container.logs(tail=tail).decode(errors="replace")
            lines.append(f"--- {container.name} ({container.status})\n{text}")
        return "\n".join(lines) or f"--- {service}: no container"

    def wait_containers(self, services: Sequence[str], timeout: float) -> dict[str, str]:
        """Wait until each service's container is healthy (or running, if it has no healthcheck)."""
        deadline = time.monotonic() + timeout
        pending = list(services)
        states: dict[str, str] = {}
        while pending and time.monotonic() < deadline:
            for service in list(pending):
                states[service] = self._container_state(service)
                if states[service] in {"healthy", "running"}:
                    pending.remove(service)
                elif states[service] in {"exited", "dead"}:
                    raise RuntimeActionError(f"{service} is {states[service]}:\n{self.logs(service)}")
                # "unhealthy" may still recover (a slow start on a busy machine): wait it out.
            if pending:
                time.sleep(1.0)
        if pending:
            details = "\n".join(f"{s}: {states.get(s)}\n{self.logs(s)}" for s in pending)
            raise RuntimeActionError(f"not healthy after {timeout:.0f}s: {pending}\n{details}")
        return dict.fromkeys(services, "healthy")

    def _container_state(self, service: str) -> str:
        # `compose run` (one-off) containers are not the service's own.
        containers = [c for c in self.containers(service) if c.labels.get(ONEOFF_LABEL) != "True"]
        if not containers:
            return "missing"
        container = containers[0]
        state = container.attrs.get("State", {})
        health = state.get("Health", {}).get("Status")
        if state.get("Status") != "running":
            return str(state.get("Status", "unknown"))
        return str(health or "running")

    @staticmethod
    def _wait_http(url: str, ok: Callable[[requests.Response], bool], deadline: float) -> str | None:
        """Poll `url` until `ok`; return None on success or the last failure reason."""
        last = "not polled"
        while True:
            try:
                response = requests.get(url, timeout=5)
                if ok(response):
                    return None
                last = f"HTTP {response.status_code}: {response.text[:200]}"
            except (requests.RequestException, ValueError, KeyError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            if time.monotonic() >= deadline:
                return last
            time.sleep(1.0)
