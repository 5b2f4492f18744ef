"""Kubernetes runtime: the stack as the kustomize tree under deploy/k8s (docs/kubernetes.md).

This module is the one definition of what the manifests may reference from outside the repository:
the Secrets an operator creates (their names and keys), and where the overlays live. The manifests
cannot import it; tests/integration/k8s/ checks the rendered objects against it, and docs/kubernetes.md
lists every Secret (a test keeps that list complete).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from mlstack.config import REPO_ROOT
from mlstack.contract import CONTAINER_PORTS, POSTGRES
from mlstack.monitoring.endpoints import K8S_MONITORING_DIR

K8S_DIR: Final = REPO_ROOT / "deploy" / "k8s"
BASE_DIR: Final = K8S_DIR / "base"
OVERLAYS: Final[tuple[str, ...]] = ("dev", "prod")
DEFAULT_OVERLAY: Final = "dev"
# Where `mlstack render monitoring --target k8s` writes (the base's configMapGenerator sources).
MONITORING_DIR: Final = K8S_MONITORING_DIR
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
