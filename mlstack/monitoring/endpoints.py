"""Where each target's services are: the only part of the monitoring config that differs by target.

A target is a name, an endpoints builder, where Alertmanager finds the CT webhook token and where the
files go. Rules and dashboards are the same for every target. `local` and `compose` address services
statically (127.0.0.1 and the configured ports; service names on the compose network); `k8s` finds its
scrape targets through Kubernetes service discovery. Another target implements `Endpoints` (its
`discovery`/`relabel`/`alertmanagers`) and registers a `Target` in TARGETS; nothing else changes.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlstack.config import REPO_ROOT, Config
from mlstack.contract import (
    ALERTMANAGER,
    API,
    CONTAINER_PORTS,
    EXPORTER,
    JENKINS,
    LOOPBACK,
    MLFLOW,
    PROMETHEUS,
)
from mlstack.monitoring.names import SERVICES

# Compose: each service by its name on the compose network, at its container port.
COMPOSE_TARGETS: dict[str, str] = {name: f"{name}:{CONTAINER_PORTS[name]}" for name in SERVICES}
COMPOSE_WEBHOOK_URL = f"http://{JENKINS}:{CONTAINER_PORTS[JENKINS]}/generic-webhook-trigger/invoke"
# Where Alertmanager reads MLSTACK_WEBHOOK_TOKEN: a Docker secret (compose), a mounted Secret (k8s).
MOUNTED_TOKEN_FILE = "/run/secrets/mlstack_webhook_token"  # noqa: S105 - a path, not a secret

# Kubernetes: Prometheus finds each job's targets among the EndpointSlices of its own namespace: the
# Service named like the job, its port named `http` (every Service in deploy/k8s names its port so).
# One target per pod, so each predictor replica is scraped on its own. Alertmanager, Prometheus and
# Jenkins (an ExternalName Service) answer at compose's names, so those addresses stay compose's.
K8S_SCRAPE_PORT_NAME = "http"
K8S_DISCOVERY: dict[str, Any] = {"role": "endpointslice", "namespaces": {"own_namespace": True}}
# Where the k8s render goes: kustomize's configMapGenerator reads files only under the base.
K8S_MONITORING_DIR = REPO_ROOT / "deploy" / "k8s" / "base" / "monitoring"


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
        return [{"static_configs": [{"targets": [self.targets[ALERTMANAGER]]}]}]

    def prometheus_url(self) -> str:
        """http://<prometheus target>."""
        return f"http://{self.targets[PROMETHEUS]}"


@dataclass(frozen=True)
class KubernetesEndpoints(StaticEndpoints):
    """In a cluster: scrape targets discovered through the Kubernetes API, the rest by Service name."""

    def discovery(self, service: str) -> dict[str, Any]:
        """EndpointSlices of Prometheus' own namespace."""
        return {"kubernetes_sd_configs": [copy.deepcopy(K8S_DISCOVERY)]}

    def relabel(self, service: str) -> list[dict[str, Any]]:
        """Keep only the `http` port of the Service named `service`; label each target with its pod."""
        return [
            {
                "source_labels": [
                    "__meta_kubernetes_service_name",
                    "__meta_kubernetes_endpointslice_port_name",
                ],
                "regex": f"{service};{K8S_SCRAPE_PORT_NAME}",
                "action": "keep",
            },
            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        ]


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
    return static_endpoints(COMPOSE_TARGETS, COMPOSE_WEBHOOK_URL, MOUNTED_TOKEN_FILE, overrides)


def k8s_endpoints(config: Config, overrides: Overrides) -> Endpoints:
    """Discovered scrape targets; Alertmanager, Prometheus and Jenkins by their in-namespace Service names."""
    if overrides.targets:
        raise ValueError("the k8s target discovers its scrape targets: static target overrides do not apply")
    static = static_endpoints(COMPOSE_TARGETS, COMPOSE_WEBHOOK_URL, MOUNTED_TOKEN_FILE, overrides)
    return KubernetesEndpoints(
        targets=static.targets, webhook_url=static.webhook_url, token_file=static.token_file
    )


def local_endpoints(config: Config, overrides: Overrides) -> Endpoints:
    """127.0.0.1 and the ports in `config.services`; CT alerts go to the local trigger server."""
    svc = config.services
    ports = {
        API: svc.api_port,
        EXPORTER: svc.exporter_port,
        MLFLOW: svc.mlflow_port,
        ALERTMANAGER: svc.alertmanager_port,
        PROMETHEUS: svc.prometheus_port,
    }
    return static_endpoints(
        {name: f"{LOOPBACK}:{port}" for name, port in ports.items()},
        f"http://{LOOPBACK}:{svc.trigger_port}/alertmanager",
        None,
        overrides,
    )


@dataclass(frozen=True)
class Target:
    """One deployment target of the monitoring config."""

    name: str
    endpoints: Callable[[Config, Overrides], Endpoints]
    # Where `mlstack render monitoring --target NAME` writes without --out.
    default_out: Callable[[Config], Path]
    # What provides the webhook token file Alertmanager reads. None: the render writes
    # $MLSTACK_WEBHOOK_TOKEN to a private file next to alertmanager.yml.
    mounted_token: str | None = None
    # promtool unit tests: written where they run (the repository, the local state dir); a target
    # whose rules are byte-equal to compose's (k8s) leaves them to compose's render.
    promtool_tests: bool = True
    # Hand-written files the target's runtime reads from the output directory, copied from the repo.
    copies: tuple[str, ...] = ()


TARGETS: dict[str, Target] = {
    "local": Target("local", local_endpoints, default_out=lambda config: config.state_dir / "monitoring"),
    "compose": Target(
        "compose",
        compose_endpoints,
        default_out=lambda config: REPO_ROOT,
        mounted_token="a Docker secret",  # noqa: S106 - says where, not a token
    ),
    "k8s": Target(
        "k8s",
        k8s_endpoints,
        default_out=lambda config: K8S_MONITORING_DIR,
        mounted_token="the mlstack-webhook-token Secret",  # noqa: S106 - says where, not a token
        promtool_tests=False,
        copies=("grafana/grafana.ini",),
    ),
}


def target(name: str) -> Target:
    """The registered target called `name`."""
    try:
        return TARGETS[name]
    except KeyError:
        raise ValueError(f"unknown monitoring target {name!r}; use one of {', '.join(TARGETS)}") from None
