"""`--runtime k8s` against a FAKE kubectl (tests/support/fake_kubectl.py): no cluster can run here.

The fake records every invocation and answers as kubectl does; rendering (`kubectl kustomize`) is the
real kubectl's. The tests pin the exact commands each stage runs, and drive the real runtime code:
applies, rollout waits, port-forwards it manages (the fake relays them to a stand-in HTTP server on
127.0.0.1) and the HTTP checks through them.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from mlstack.config import REPO_ROOT, Config, load_config
from mlstack.contract import (
    API,
    CONTAINER_PORTS,
    HTTP_SERVICES,
    IMAGE_TAG_ENV,
    K8S_CONTEXT_ENV,
    K8S_OVERLAY_ENV,
    KUBECTL_ENV,
)
from mlstack.deployment import RuntimeActionError
from mlstack.runtime.compose import PROJECT_IMAGES
from mlstack.runtime.k8s import K8sRuntime
from tests.support import fake_kubectl
from tests.support.binaries import require_binary
from tests.support.k8s import kustomize
from tests.support.net import free_port

pytestmark = pytest.mark.integration

SERVICE_PORT_KEYS = {name: f"services.{name}_port" for name in HTTP_SERVICES}


class StandIn(BaseHTTPRequestHandler):
    """Answers every service's health path as a healthy service would (the cluster's stand-in)."""

    def do_GET(self) -> None:
        if self.path == "/api/v1/targets":
            body: Any = {"status": "success", "data": {"activeTargets": [{"health": "up"}]}}
        else:
            body = {"status": "ok", "path": self.path}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def standin() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, standin: int) -> Path:
    """The FAKE kubectl first on PATH; returns its call log."""
    real = require_binary("kubectl")
    log = tmp_path / "kubectl-calls.jsonl"
    for key, value in fake_kubectl.install(tmp_path / "bin", log, real).items():
        monkeypatch.setenv(key, value)
    for service in HTTP_SERVICES:
        monkeypatch.setenv(fake_kubectl.FORWARD_ENV_PREFIX + service.upper(), str(standin))
    for name in (K8S_OVERLAY_ENV, K8S_CONTEXT_ENV, KUBECTL_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv(IMAGE_TAG_ENV, raising=False)
    return log


@pytest.fixture
def config(tmp_path: Path) -> Config:
    overrides: dict[str, Any] = {key: free_port() for key in SERVICE_PORT_KEYS.values()}
    overrides["services.state_dir"] = str(tmp_path / "state")
    overrides["services.healthcheck_timeout_s"] = 30
    return load_config(overrides=overrides, environ={})


def without_render(log: Path) -> list[list[str]]:
    return [c for c in fake_kubectl.calls(log) if c[0] != "kustomize"]


def rollout(ref: str) -> list[str]:
    return ["--namespace", "mlstack", "rollout", "status", ref, "--timeout=30s"]


def apply(component: str, path: str = "deploy/k8s/overlays/dev") -> list[str]:
    return [
        "apply",
        "--server-side",
        "--field-manager=mlstack",
        "-k",
        path,
        "--selector",
        f"app.kubernetes.io/component={component}",
    ]


PLATFORM_DEV = [
    apply("platform"),
    rollout("statefulset/postgres"),
    rollout("deployment/alertmanager"),
    rollout("deployment/grafana"),
    rollout("deployment/mlflow"),
    rollout("deployment/prometheus"),
]
DEPLOY_DEV = [apply("serving"), rollout("deployment/api"), rollout("deployment/exporter")]


def test_platform_applies_the_platform_objects_and_waits_for_each_rollout(fake: Path, config: Config) -> None:
    runtime = K8sRuntime(config)
    runtime.start_platform(config)
    assert without_render(fake) == PLATFORM_DEV
    assert [c[1:] for c in runtime.plan("platform", config)] == PLATFORM_DEV


def test_deploy_applies_the_serving_objects_and_waits_for_the_predictor_and_exporter(
    fake: Path, config: Config
) -> None:
    runtime = K8sRuntime(config)
    runtime.deploy(config)
    assert without_render(fake) == DEPLOY_DEV
    assert [c[1:] for c in runtime.plan("deploy", config)] == DEPLOY_DEV


def test_prod_has_no_in_cluster_postgres_to_wait_for(fake: Path, config: Config) -> None:
    runtime = K8sRuntime(config, overlay="prod")
    runtime.start_platform(config)
    calls = without_render(fake)
    assert calls[0] == apply("platform", "deploy/k8s/overlays/prod")
    assert rollout("statefulset/postgres") not in calls


def test_healthcheck_waits_for_every_rollout_then_checks_each_service_through_a_port_forward(
    fake: Path, config: Config
) -> None:
    runtime = K8sRuntime(config)
    try:
        statuses = runtime.healthcheck(config)
    finally:
        runtime.close()
    workloads = ["statefulset/postgres"] + [
        f"deployment/{name}"
        for name in ("alertmanager", "api", "exporter", "grafana", "mlflow", "prometheus")
    ]
    forwards = [
        [
            "--namespace",
            "mlstack",
            "port-forward",
            "--address",
            "127.0.0.1",
            f"service/{name}",
            f"{getattr(config.services, f'{name}_port')}:{CONTAINER_PORTS[name]}",
        ]
        for name in HTTP_SERVICES
    ]
    calls = without_render(fake)
    assert calls == [rollout(w) for w in workloads] + forwards
    assert all(statuses[name] == "healthy" for name in HTTP_SERVICES)
    assert [c[1:] for c in runtime.plan("healthcheck", config)] == calls


def test_smoke_reaches_the_predictor_through_a_managed_port_forward(fake: Path, config: Config) -> None:
    runtime = K8sRuntime(config)
    try:
        url = runtime.service_urls(config)[API]
        assert url == f"http://127.0.0.1:{config.services.api_port}"
        assert requests.get(f"{url}/readyz", timeout=5).json()["path"] == "/readyz"
        assert [c[1:] for c in runtime.plan("smoke", config)] == [
            c for c in without_render(fake) if "service/api" in c
        ]
    finally:
        runtime.close()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/readyz", timeout=2)


def test_a_failed_rollout_fails_the_stage_with_kubectls_message(
    fake: Path, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(fake_kubectl.FAIL_ENV, "deployment/api")
    with pytest.raises(RuntimeActionError, match=r"deployment/api.*failed as the test asked"):
        K8sRuntime(config).deploy(config)


def test_a_missing_kubectl_is_a_clear_error(
    config: Config, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(RuntimeActionError, match="kubectl not found"):
        K8sRuntime(config).deploy(config)


def test_image_tag_applies_a_wrapper_kustomization_the_real_kubectl_renders(
    fake: Path, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(IMAGE_TAG_ENV, "1.4.0")
    runtime = K8sRuntime(config)
    runtime.deploy(config)
    wrapper = config.state_dir / "k8s" / "dev"
    applied = without_render(fake)[0]
    assert (REPO_ROOT / applied[applied.index("-k") + 1]).resolve() == wrapper.resolve()
    rendered = [d for d in yaml.safe_load_all(kustomize(str(wrapper))) if d]
    images = {
        c["image"]
        for d in rendered
        if d["kind"] in {"Deployment", "StatefulSet"}
        for c in d["spec"]["template"]["spec"]["containers"]
    }
    project = {i for i in images if i.split(":")[0].removeprefix("mlstack/") in PROJECT_IMAGES}
    assert project and all(i.endswith(":1.4.0") for i in project), images
    # The wrapper changes the project images' tag only: the others are the overlay's own.
    plain = {
        c["image"]
        for d in yaml.safe_load_all(kustomize("deploy/k8s/overlays/dev"))
        if d and d["kind"] in {"Deployment", "StatefulSet"}
        for c in d["spec"]["template"]["spec"]["containers"]
    }
    assert images - project == {i for i in plain if not i.startswith("mlstack/")}
