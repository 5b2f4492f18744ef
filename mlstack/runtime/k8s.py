"""Kubernetes runtime: the stack as the kustomize tree under deploy/k8s (docs/kubernetes.md).

This module is the one definition of what the manifests may reference from outside the repository:
the Secrets an operator creates (their names and keys), and where the overlays live. The manifests
cannot import it; tests/integration/k8s/ checks the rendered objects against it, and docs/kubernetes.md
lists every Secret (a test keeps that list complete).
"""

from __future__ import annotations

import copy
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from mlstack.config import REPO_ROOT, Config
from mlstack.contract import CONTAINER_PORTS, POSTGRES

K8S_DIR: Final = REPO_ROOT / "deploy" / "k8s"
BASE_DIR: Final = K8S_DIR / "base"
OVERLAYS: Final[tuple[str, ...]] = ("dev", "prod")
DEFAULT_OVERLAY: Final = "dev"
# Where `mlstack render monitoring --target k8s` writes: inside the base, because kustomize's
# configMapGenerator reads files only from under the kustomization's own directory.
MONITORING_DIR: Final = BASE_DIR / "monitoring"
JENKINS_POD_TEMPLATE: Final = K8S_DIR / "jenkins" / "pod-template.yaml"
# A one-off training Job (`kubectl create -f`), the counterpart of compose's `make train`.
TRAIN_JOB: Final = K8S_DIR / "jobs" / "train.yaml"

# `app.kubernetes.io/component` of every object: what applies it. `access` objects (the namespace,
# RBAC, NetworkPolicies) are applied by an administrator; the pipeline's deployer account cannot.
COMPONENT_LABEL: Final = "app.kubernetes.io/component"
PLATFORM: Final = "platform"
SERVING: Final = "serving"
ACCESS: Final = "access"
COMPONENTS: Final[tuple[str, ...]] = (PLATFORM, SERVING, ACCESS)
# The ServiceAccount pipeline pods run as (deploy/k8s/jenkins/pod-template.yaml).
DEPLOYER_ACCOUNT: Final = "mlstack-deployer"


def overlay_dir(overlay: str) -> str:
    """deploy/k8s/overlays/<overlay>, as a path string; an unknown overlay is an error."""
    if overlay not in OVERLAYS:
        raise ValueError(f"unknown overlay {overlay!r}; use one of {', '.join(OVERLAYS)}")
    return str(K8S_DIR / "overlays" / overlay)


@dataclass(frozen=True)
class SecretSpec:
    """A Secret the manifests reference and an operator creates: no value lives in the repository."""

    name: str
    keys: dict[str, str]  # key -> what it holds
    overlays: tuple[str, ...]
    purpose: str


_PG_PORT: Final = CONTAINER_PORTS[POSTGRES]
SECRETS: Final[tuple[SecretSpec, ...]] = (
    SecretSpec(
        "mlstack-db",
        {
            "mlflow-password": "password of the PostgreSQL role `mlflow` (MLflow's backend store)",
            "predictions-password": "password of the PostgreSQL role `predictions` (the prediction log)",
        },
        OVERLAYS,
        "database passwords, given to each service as PGPASSWORD (never in a URL)",
    ),
    SecretSpec(
        "mlstack-postgres",
        {"password": "the in-cluster PostgreSQL superuser's password"},
        ("dev",),
        "the in-cluster PostgreSQL (dev overlay)",
    ),
    SecretSpec(
        "mlstack-postgres-external",
        {
            "mlflow-backend-store-uri": f"postgresql+psycopg2://mlflow@<host>:{_PG_PORT}/mlflow[?sslmode=require]",
            "prediction-store-url": f"postgresql+psycopg2://predictions@<host>:{_PG_PORT}/predictions"
            "[?sslmode=require]",
        },
        ("prod",),
        "where the external PostgreSQL is (prod overlay); the URLs hold no password",
    ),
    SecretSpec(
        "mlstack-admin-token",
        {"token": "bearer token of the predictor's admin endpoints (MLSTACK_ADMIN_TOKEN)"},
        OVERLAYS,
        "the predictor's admin token",
    ),
    SecretSpec(
        "mlstack-webhook-token",
        {"token": "bearer token Alertmanager sends to the Jenkins retrain webhook (MLSTACK_WEBHOOK_TOKEN)"},
        OVERLAYS,
        "the continuous-training webhook token",
    ),
    SecretSpec(
        "mlstack-grafana-admin",
        {"password": "Grafana's admin password (GF_SECURITY_ADMIN_PASSWORD)"},
        OVERLAYS,
        "Grafana's admin login",
    ),
)


def secret(name: str) -> SecretSpec:
    """The documented Secret called `name`."""
    for spec in SECRETS:
        if spec.name == name:
            return spec
    raise KeyError(f"undocumented Secret {name!r}; documented: {[s.name for s in SECRETS]}")


# --------------------------------------------------------------------------- monitoring config

# Prometheus finds each job's targets among the EndpointSlices of its own namespace: the Service named
# like the job, its port named `http` (every Service in deploy/k8s names its port so). One target per
# ready or unready pod, so each predictor replica is scraped on its own.
SCRAPE_PORT_NAME: Final = "http"
K8S_DISCOVERY: Final[dict[str, Any]] = {"role": "endpointslice", "namespaces": {"own_namespace": True}}
COMPOSE_HEADER_TARGET: Final = "--target compose"
K8S_HEADER_TARGET: Final = "--target k8s"
GRAFANA_FILES: Final[tuple[str, ...]] = (
    "grafana/grafana.ini",
    "grafana/provisioning/datasources/prometheus.yml",
    "grafana/provisioning/dashboards/dashboards.yml",
)
GRAFANA_DASHBOARDS: Final = "grafana/dashboards"


def discovery_relabel(job: str) -> list[dict[str, Any]]:
    """Keep only the `http` port of the Service named `job`; label each target with its pod."""
    return [
        {
            "source_labels": ["__meta_kubernetes_service_name", "__meta_kubernetes_endpointslice_port_name"],
            "regex": f"{job};{SCRAPE_PORT_NAME}",
            "action": "keep",
        },
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
    ]


def kubernetes_scrape_configs(scrape_configs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Compose's scrape jobs with static targets replaced by Kubernetes service discovery.

    Everything else about a job (name, path, its own relabelling) is compose's, so the two configs
    differ in target discovery only.
    """
    jobs = []
    for job in scrape_configs:
        converted = {k: v for k, v in job.items() if k not in {"static_configs", "relabel_configs"}}
        converted["kubernetes_sd_configs"] = [copy.deepcopy(K8S_DISCOVERY)]
        converted["relabel_configs"] = discovery_relabel(job["job_name"]) + list(
            job.get("relabel_configs", [])
        )
        jobs.append(converted)
    return jobs


def render_monitoring(config: Config, out_dir: Path = MONITORING_DIR) -> list[Path]:
    """Write the k8s monitoring files (ConfigMap sources) from the same source as compose's.

    Renders the compose target, then swaps Prometheus' static targets for Kubernetes discovery; the
    rules, Alertmanager and Grafana files are compose's unchanged (the `jenkins` ExternalName Service
    and the mounted webhook-token Secret make compose's addresses valid in the cluster).
    """
    from mlstack import monitoring

    written: list[Path] = []
    with tempfile.TemporaryDirectory() as tmp:
        rendered = monitoring.render_monitoring(
            config, "compose", tmp, webhook_url=monitoring.COMPOSE_WEBHOOK_URL
        )
        # The promtool cases stay with compose's render: the rules they test are the same files.
        for path in [rendered.prometheus_config, rendered.recording_rules, rendered.alert_rules]:
            relative = path.relative_to(tmp)
            text = path.read_text().replace(COMPOSE_HEADER_TARGET, K8S_HEADER_TARGET, 1)
            if relative == Path("prometheus/prometheus.yml"):
                header = "".join(line + "\n" for line in text.splitlines() if line.startswith("#"))
                data = yaml.safe_load(text)
                data["scrape_configs"] = kubernetes_scrape_configs(data["scrape_configs"])
                text = header + yaml.safe_dump(data, sort_keys=False, width=1000)
            written.append(_write(out_dir / relative, text))
        relative = rendered.alertmanager_config.relative_to(tmp)
        text = rendered.alertmanager_config.read_text().replace(COMPOSE_HEADER_TARGET, K8S_HEADER_TARGET, 1)
        written.append(_write(out_dir / relative, text))
    sources = [REPO_ROOT / name for name in GRAFANA_FILES]
    sources += sorted((REPO_ROOT / GRAFANA_DASHBOARDS).glob("*.json"))
    for source in sources:
        written.append(_write(out_dir / source.relative_to(REPO_ROOT), source.read_text()))
    return written


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
