"""Where each target's services are: the only part of the monitoring config that differs by target.

A target is a name, an endpoints builder and where Alertmanager finds the CT webhook token. Rules,
tests and dashboards are the same for every target. Today's targets address services statically
(`local`: 127.0.0.1 and the configured ports; `compose`: service names on the compose network). A
target that discovers its scrape targets (Kubernetes service discovery) implements `Endpoints` with
its own `discovery`/`relabel`/`alertmanagers` and registers a `Target` in TARGETS; nothing else changes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mlstack.config import Config
from mlstack.monitoring.names import SERVICES

COMPOSE_TARGETS: dict[str, str] = {
    "api": "api:7654",
    "exporter": "exporter:8000",
    "mlflow": "mlflow:5000",
    "alertmanager": "alertmanager:9093",
    "prometheus": "prometheus:9090",
}
COMPOSE_WEBHOOK_URL = "http://jenkins:8080/generic-webhook-trigger/invoke"
# Docker secret holding MLSTACK_WEBHOOK_TOKEN inside the alertmanager container.
COMPOSE_TOKEN_FILE = "/run/secrets/mlstack_webhook_token"  # noqa: S105 - a path, not a secret


@dataclass(frozen=True)
class Overrides:
    """Render-time replacements for a target's defaults (tests use free ports; operators a CI URL)."""

    targets: Mapping[str, str] = field(default_factory=dict)
    webhook_url: str | None = None
    token_file: str | None = None


@dataclass(frozen=True)
class Endpoints(ABC):
    """Where Prometheus finds the services and Alertmanager, and where Alertmanager posts CT alerts."""

    webhook_url: str
    # Path as Alertmanager reads it; None sends no Authorization header.
    token_file: str | None

    @abstractmethod
    def discovery(self, service: str) -> dict[str, Any]:
        """The scrape job's target discovery for `service` (e.g. `static_configs`)."""

    def relabel(self, service: str) -> list[dict[str, Any]]:
        """Relabelling before the job's `service` label: none for static targets."""
        return []

    @abstractmethod
    def alertmanagers(self) -> list[dict[str, Any]]:
        """prometheus.yml `alerting.alertmanagers`."""

    @abstractmethod
    def prometheus_url(self) -> str:
        """Prometheus' URL as Grafana reaches it (the provisioned datasource)."""


@dataclass(frozen=True)
class StaticEndpoints(Endpoints):
    """Services at fixed host:port addresses."""

    targets: Mapping[str, str] = field(default_factory=dict)

    def discovery(self, service: str) -> dict[str, Any]:
        """One static target."""
        return {"static_configs": [{"targets": [self.targets[service]]}]}

    def alertmanagers(self) -> list[dict[str, Any]]:
        """The one Alertmanager, statically."""
        return [{"static_configs": [{"targets": [self.targets["alertmanager"]]}]}]

    def prometheus_url(self) -> str:
        """http://<prometheus target>."""
        return f"http://{self.targets['prometheus']}"


def static_endpoints(
    defaults: Mapping[str, str], webhook_url: str, token_file: str | None, overrides: Overrides
) -> StaticEndpoints:
    """`defaults` with `overrides` applied; an override for an unknown service is an error."""
    unknown = sorted(set(overrides.targets) - set(SERVICES))
    if unknown:
        raise ValueError(f"unknown service(s) {unknown} in target overrides; known: {list(SERVICES)}")
    return StaticEndpoints(
        targets={**defaults, **overrides.targets},
        webhook_url=overrides.webhook_url or webhook_url,
        token_file=overrides.token_file or token_file,
    )


def compose_endpoints(config: Config, overrides: Overrides) -> Endpoints:
    """Service names on the compose network; the token is the Docker secret."""
    return static_endpoints(COMPOSE_TARGETS, COMPOSE_WEBHOOK_URL, COMPOSE_TOKEN_FILE, overrides)


def local_endpoints(config: Config, overrides: Overrides) -> Endpoints:
    """127.0.0.1 and the ports in `config.services`; CT alerts go to the local trigger server."""
    svc = config.services
    ports = {
        "api": svc.api_port,
        "exporter": svc.exporter_port,
        "mlflow": svc.mlflow_port,
        "alertmanager": svc.alertmanager_port,
        "prometheus": svc.prometheus_port,
    }
    return static_endpoints(
        {name: f"127.0.0.1:{port}" for name, port in ports.items()},
        f"http://127.0.0.1:{svc.trigger_port}/alertmanager",
        None,
        overrides,
    )


@dataclass(frozen=True)
class Target:
    """One deployment target of the monitoring config."""

    name: str
    endpoints: Callable[[Config, Overrides], Endpoints]
    # Where the runtime mounts the webhook token for Alertmanager, and what provides it. None: the
    # render writes $MLSTACK_WEBHOOK_TOKEN to a private file next to alertmanager.yml.
    mounted_token: str | None = None


TARGETS: dict[str, Target] = {
    "local": Target("local", local_endpoints),
    "compose": Target("compose", compose_endpoints, mounted_token="a Docker secret"),  # noqa: S106 - says where, not a token
}


def target(name: str) -> Target:
    """The registered target called `name`."""
    try:
        return TARGETS[name]
    except KeyError:
        raise ValueError(f"unknown monitoring target {name!r}; use one of {', '.join(TARGETS)}") from None
