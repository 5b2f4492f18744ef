"""Kubernetes runtime: the stack as the kustomize tree under deploy/k8s (docs/kubernetes.md).

This module is the one definition of what the manifests may reference from outside the repository:
the Secrets an operator creates (their names and keys), and where the overlays live. The manifests
cannot import it; tests/integration/k8s/ checks the rendered objects against it, and docs/kubernetes.md
lists every Secret (a test keeps that list complete).
"""

from __future__ import annotations

import atexit
import logging
import os
import shlex
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

import yaml

from mlstack.config import REPO_ROOT, Config
from mlstack.contract import (
    API,
    CONTAINER_PORTS,
    HTTP_SERVICES,
    IMAGE_TAG_ENV,
    K8S_CONTEXT_ENV,
    K8S_OVERLAY_ENV,
    KUBECTL_ENV,
    LOOPBACK,
    POSTGRES,
    Service,
    Stage,
)
from mlstack.deployment import RuntimeActionError
from mlstack.monitoring.endpoints import K8S_MONITORING_DIR
from mlstack.progress import report
from mlstack.runtime.compose import PROJECT_IMAGES, host_ports

log = logging.getLogger(__name__)

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
    # Keys an overlay needs although the Secret is used by more overlays (default: all of `overlays`).
    key_overlays: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def overlays_of(self, key: str) -> tuple[str, ...]:
        """The overlays in which `key` must exist."""
        return self.key_overlays.get(key, self.overlays)


_PG_PORT: Final = CONTAINER_PORTS[POSTGRES]
# The dev overlay's prediction log (the in-cluster PostgreSQL): the in-cluster-postgres component gives it
# to the predictor and exporter; the pipeline pods (Jenkins pod template, training Job) live outside the
# overlays and read it, in every overlay, from the Secret below.
DEV_PREDICTION_STORE_URL: Final = f"postgresql+psycopg2://predictions@{POSTGRES}:{_PG_PORT}/predictions"
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
            f"[?sslmode=require]; in dev the in-cluster {DEV_PREDICTION_STORE_URL} (for the pipeline pods)",
        },
        OVERLAYS,
        "where the external PostgreSQL is (prod overlay); in dev only the pipeline pods' prediction log URL; "
        "the URLs hold no password",
        key_overlays={"mlflow-backend-store-uri": ("prod",)},
    ),
    SecretSpec(
        "mlstack-admin-token",
        {"token": "bearer token of the predictor's admin endpoints (MLSTACK_ADMIN_TOKEN)"},
        OVERLAYS,
        "the predictor's admin token",
    ),
    SecretSpec(
        "mlstack-feedback-token",
        {"token": "bearer token of the predictor's POST /feedback (MLSTACK_FEEDBACK_TOKEN)"},
        OVERLAYS,
        "the predictor's feedback token: labels are training data",
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


# --------------------------------------------------------------------------- the runtime

# docker-compose.yaml names the project images mlstack/<service>.
IMAGE_NAMESPACE: Final = "mlstack"
# Server-side apply under one field manager: re-applying is idempotent, and the HPA's replica count
# (a field this manager never sets in prod) is left alone.
FIELD_MANAGER: Final = "mlstack"
WORKLOAD_ORDER: Final[tuple[str, ...]] = ("StatefulSet", "Deployment")
PORT_FORWARD_READY_S: Final = 30.0
# One kubectl call (apply, rollout status): rollout status has its own --timeout below this.
KUBECTL_TIMEOUT_S: Final = 3600.0


@dataclass(frozen=True)
class Workload:
    """A Deployment or StatefulSet of the overlay, as `kubectl rollout status` names it."""

    kind: str
    name: str
    component: str

    @property
    def ref(self) -> str:
        """`deployment/api`."""
        return f"{self.kind.lower()}/{self.name}"


class K8sRuntime:
    """The stack in a Kubernetes namespace (`--runtime k8s`), driven through kubectl.

    `platform` and `deploy` apply the overlay's platform or serving objects (server-side apply, label
    selector) and wait for their rollouts; `healthcheck` and `smoke` reach the services through
    `kubectl port-forward` on 127.0.0.1 and the `services.*_port` of the config (the host ports compose
    publishes), which this runtime starts and stops. Rollback is the alias move, as everywhere.
    """

    name = "k8s"

    def __init__(
        self,
        config: Config,
        *,
        overlay: str | None = None,
        context: str | None = None,
        kubectl: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """Args default to $MLSTACK_K8S_OVERLAY (dev), $MLSTACK_K8S_CONTEXT (kubectl's current
        context), $MLSTACK_KUBECTL (kubectl on PATH). $MLSTACK_TAG, when set, is the tag of the project
        images (as for compose). The namespace is the overlay's own (its `namespace:`)."""
        env = os.environ if environ is None else environ
        self.overlay = overlay or env.get(K8S_OVERLAY_ENV) or DEFAULT_OVERLAY
        overlay_dir(self.overlay)  # unknown overlay: fail now
        self.context = context or env.get(K8S_CONTEXT_ENV) or None
        self.kubectl = kubectl or env.get(KUBECTL_ENV) or "kubectl"
        self.tag = env.get(IMAGE_TAG_ENV) or None
        self.state_dir = config.state_dir
        self._forwards: dict[str, subprocess.Popen[bytes]] = {}
        self._workloads: list[Workload] | None = None
        self._namespace: str | None = None
        atexit.register(self.close)

    # -- commands --------------------------------------------------------------------------------
    def _base(self, namespaced: bool = True) -> list[str]:
        args = [self.kubectl]
        if self.context:
            args += ["--context", self.context]
        if namespaced:
            args += ["--namespace", self.namespace]
        return args

    def kustomization(self) -> str:
        """The directory `kubectl apply -k` applies: the overlay, or a wrapper that sets $MLSTACK_TAG."""
        target = overlay_dir(self.overlay)
        if not self.tag:
            return os.path.relpath(target, REPO_ROOT)
        wrapper = self.state_dir / "k8s" / self.overlay
        return os.path.relpath(wrapper, REPO_ROOT)

    def apply_command(self, component: str) -> list[str]:
        """`kubectl apply` of one component's objects (objects carry their namespace)."""
        return [
            *self._base(namespaced=False),
            "apply",
            "--server-side",
            f"--field-manager={FIELD_MANAGER}",
            "-k",
            self.kustomization(),
            "--selector",
            f"{COMPONENT_LABEL}={component}",
        ]

    def rollout_command(self, workload: Workload, timeout_s: float) -> list[str]:
        """`kubectl rollout status` of one workload, bounded by the healthcheck timeout."""
        return [*self._base(), "rollout", "status", workload.ref, f"--timeout={timeout_s:.0f}s"]

    def port_forward_command(self, service: Service, local_port: int) -> list[str]:
        """`kubectl port-forward` of a Service's contract port to 127.0.0.1:`local_port`."""
        remote = CONTAINER_PORTS[service]
        return [
            *self._base(),
            "port-forward",
            "--address",
            LOOPBACK,
            f"service/{service}",
            f"{local_port}:{remote}",
        ]

    @property
    def namespace(self) -> str:
        """The namespace the overlay puts every object in."""
        self._render()
        assert self._namespace is not None
        return self._namespace

    def workloads(self, component: str | None = None) -> list[Workload]:
        """The overlay's Deployments and StatefulSets, StatefulSets (databases) first."""
        self._render()
        assert self._workloads is not None
        return [w for w in self._workloads if component is None or w.component == component]

    def _render(self) -> None:
        """Read workloads and namespace off `kubectl kustomize` (no cluster involved), once."""
        if self._workloads is not None:
            return
        rendered = self._run(
            [self.kubectl, "kustomize", overlay_dir(self.overlay)], what="render the overlay"
        )
        docs = [doc for doc in yaml.safe_load_all(rendered) if doc]
        namespaces = {d["metadata"]["namespace"] for d in docs if "namespace" in d["metadata"]}
        if len(namespaces) != 1:
            raise RuntimeActionError(
                f"overlay {self.overlay} spans namespaces {sorted(namespaces)}; expected one"
            )
        found = [
            Workload(doc["kind"], doc["metadata"]["name"], doc["metadata"]["labels"][COMPONENT_LABEL])
            for doc in docs
            if doc["kind"] in WORKLOAD_ORDER
        ]
        self._workloads = sorted(found, key=lambda w: WORKLOAD_ORDER.index(w.kind))
        self._namespace = namespaces.pop()

    def plan(self, stage: Stage, config: Config) -> list[list[str]]:
        """The kubectl commands a stage runs, in order (what `--dry-run` prints); [] for the others."""
        timeout = config.services.healthcheck_timeout_s
        if stage in ("platform", "deploy"):
            component = PLATFORM if stage == "platform" else SERVING
            waits = [self.rollout_command(w, timeout) for w in self.workloads(component)]
            return [self.apply_command(component), *waits]
        if stage == "healthcheck":
            waits = [self.rollout_command(w, timeout) for w in self.workloads()]
            ports = host_ports(config)
            return [*waits, *(self.port_forward_command(s, ports[s]) for s in HTTP_SERVICES)]
        if stage == "smoke":
            return [self.port_forward_command(API, host_ports(config)[API])]
        return []

    def access(self, config: Config) -> dict[str, str]:
        """How a person reaches each service from this machine: the port-forward the runtime would use."""
        ports = host_ports(config)
        return {
            service: f"{shlex.join(self.port_forward_command(service, ports[service]))}  -> http://{LOOPBACK}:{ports[service]}"
            for service in HTTP_SERVICES
        }

    # -- Runtime protocol ------------------------------------------------------------------------
    def build(self, config: Config) -> str:
        # The cluster runs the images compose builds (same names and tags); getting them to the
        # cluster (push, `kind load`, `k3s ctr images import`) is the registry's business.
        from mlstack.runtime.compose import ComposeRuntime

        return ComposeRuntime(config).build(config) + " (push them where the cluster pulls from)"

    def start_platform(self, config: Config) -> None:
        self._apply(PLATFORM, config)

    def deploy(self, config: Config) -> None:
        self._apply(SERVING, config)

    def healthcheck(self, config: Config) -> dict[str, str]:
        timeout = config.services.healthcheck_timeout_s
        deadline = time.monotonic() + timeout
        statuses: dict[str, str] = {}
        for workload in self.workloads():
            self._run(self.rollout_command(workload, timeout), what=f"wait for {workload.ref}")
            statuses[workload.name] = "rolled out"
        from mlstack.runtime.compose import HTTP_CHECKS, ComposeRuntime

        urls = self.service_urls(config)
        for check in HTTP_CHECKS:
            url = urls[check.service] + check.path
            last = ComposeRuntime._wait_http(url, check.ok, deadline)
            if last is not None:
                raise RuntimeActionError(f"{check.service}: {url} not healthy after {timeout:.0f}s ({last})")
            statuses[check.service] = "healthy"
        return statuses

    def service_urls(self, config: Config) -> dict[str, str]:
        """127.0.0.1 URLs of port-forwards to each HTTP service (started here, stopped at exit)."""
        ports = host_ports(config)
        for service in HTTP_SERVICES:
            self._forward(service, ports[service])
        return {service: f"http://{LOOPBACK}:{ports[service]}" for service in HTTP_SERVICES}

    def stop(self, config: Config) -> None:
        # Only the port-forwards are this process's own; the cluster keeps running the stack.
        self.close()

    def close(self) -> None:
        """Stop the port-forwards this runtime started."""
        for process in self._forwards.values():
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)
        self._forwards.clear()

    # -- helpers ---------------------------------------------------------------------------------
    def _apply(self, component: str, config: Config) -> None:
        if self.tag:
            self._write_wrapper()
        self._run(self.apply_command(component), what=f"apply the {component} objects")
        timeout = config.services.healthcheck_timeout_s
        for workload in self.workloads(component):
            self._run(self.rollout_command(workload, timeout), what=f"wait for {workload.ref}")
            report(f"  {workload.ref}: rolled out")

    def _write_wrapper(self) -> None:
        """A kustomization over the overlay that sets the project images' tag to $MLSTACK_TAG."""
        wrapper = REPO_ROOT / self.kustomization()
        wrapper.mkdir(parents=True, exist_ok=True)
        images = [{"name": f"{IMAGE_NAMESPACE}/{image}", "newTag": self.tag} for image in PROJECT_IMAGES]
        content = {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": [os.path.relpath(overlay_dir(self.overlay), wrapper)],
            "images": images,
        }
        (wrapper / "kustomization.yaml").write_text(yaml.safe_dump(content, sort_keys=False))

    def _run(self, argv: list[str], what: str) -> str:
        log.info("kubectl: %s", " ".join(argv[1:]))
        try:
            result = subprocess.run(
                argv, capture_output=True, text=True, check=False, timeout=KUBECTL_TIMEOUT_S, cwd=REPO_ROOT
            )
        except FileNotFoundError as exc:
            raise RuntimeActionError(
                f"kubectl not found ({self.kubectl}); install it or set {KUBECTL_ENV}"
            ) from exc
        except subprocess.TimeoutExpired as exc:
            raise RuntimeActionError(f"could not {what}: `{' '.join(argv)}` timed out") from exc
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip().splitlines()
            raise RuntimeActionError(
                f"could not {what}: `{' '.join(argv)}` failed (exit {result.returncode}):\n"
                + "\n".join(output[-40:])
            )
        return result.stdout

    def _forward(self, service: Service, local_port: int) -> None:
        """Start (once) a port-forward and wait until 127.0.0.1:`local_port` accepts connections."""
        running = self._forwards.get(service)
        if running is not None and running.poll() is None:
            return
        argv = self.port_forward_command(service, local_port)
        log.info("kubectl: %s", " ".join(argv[1:]))
        log_file = self.state_dir / "k8s" / f"port-forward-{service}.log"
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with log_file.open("wb") as sink:
            try:
                process = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, cwd=REPO_ROOT)
            except FileNotFoundError as exc:
                raise RuntimeActionError(
                    f"kubectl not found ({self.kubectl}); install it or set {KUBECTL_ENV}"
                ) from exc
        self._forwards[service] = process
        deadline = time.monotonic() + PORT_FORWARD_READY_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                output = log_file.read_text(errors="replace")[-2000:]
                raise RuntimeActionError(f"`{' '.join(argv)}` exited with {process.returncode}:\n{output}")
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.settimeout(1.0)
                if probe.connect_ex((LOOPBACK, local_port)) == 0:
                    return
            time.sleep(0.2)
        raise RuntimeActionError(
            f"port-forward to service/{service} not listening on {LOOPBACK}:{local_port}"
        )
