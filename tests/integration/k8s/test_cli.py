"""`mlstack ... --runtime k8s` through the real CLI: the dry run prints the exact kubectl commands of
each stage (pinned here like the Jenkinsfile's commands), and a real run executes exactly those,
recorded by a FAKE kubectl on PATH (no cluster can run here; tests/support/fake_kubectl.py).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from mlstack.config import REPO_ROOT
from mlstack.contract import IMAGE_TAG_ENV, K8S_CONTEXT_ENV, K8S_OVERLAY_ENV, KUBECTL_ENV
from tests.support import fake_kubectl
from tests.support.binaries import require_binary

pytestmark = pytest.mark.integration

MLSTACK = str(Path(sys.executable).parent / "mlstack")
NS = "kubectl --namespace mlstack"
PLATFORM = [
    "platform: kubectl apply --server-side --field-manager=mlstack -k deploy/k8s/overlays/dev"
    " --selector app.kubernetes.io/component=platform",
    f"platform: {NS} rollout status statefulset/postgres --timeout=120s",
    f"platform: {NS} rollout status deployment/alertmanager --timeout=120s",
    f"platform: {NS} rollout status deployment/grafana --timeout=120s",
    f"platform: {NS} rollout status deployment/mlflow --timeout=120s",
    f"platform: {NS} rollout status deployment/prometheus --timeout=120s",
]
DEPLOY = [
    "deploy: kubectl apply --server-side --field-manager=mlstack -k deploy/k8s/overlays/dev"
    " --selector app.kubernetes.io/component=serving",
    f"deploy: {NS} rollout status deployment/api --timeout=120s",
    f"deploy: {NS} rollout status deployment/exporter --timeout=120s",
]
HEALTHCHECK = [
    f"healthcheck: {NS} rollout status {ref} --timeout=120s"
    for ref in (
        "statefulset/postgres",
        "deployment/alertmanager",
        "deployment/api",
        "deployment/exporter",
        "deployment/grafana",
        "deployment/mlflow",
        "deployment/prometheus",
    )
] + [
    f"healthcheck: {NS} port-forward --address 127.0.0.1 service/{name} {port}:{port}"
    for name, port in (
        ("mlflow", 5000),
        ("api", 7654),
        ("exporter", 8000),
        ("prometheus", 9090),
        ("alertmanager", 9093),
        ("grafana", 3000),
    )
]
SMOKE = [f"smoke: {NS} port-forward --address 127.0.0.1 service/api 7654:7654"]


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without mlstack overrides (the defaults are what is pinned)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLSTACK", "MLFLOW_"))}
    for name in (K8S_OVERLAY_ENV, K8S_CONTEXT_ENV, KUBECTL_ENV, IMAGE_TAG_ENV):
        env.pop(name, None)
    return {**env, **extra}


def mlstack(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MLSTACK, *args], capture_output=True, text=True, env=env, cwd=REPO_ROOT, check=False, timeout=300
    )


def plan_lines(output: str) -> list[str]:
    stages = ("build", "platform", "deploy", "healthcheck", "smoke")
    return [line.strip() for line in output.splitlines() if line.strip().split(":")[0] in stages]


def test_dry_run_prints_the_exact_kubectl_commands_of_each_stage() -> None:
    require_binary("kubectl")
    result = mlstack(
        "stage", "build", "platform", "validate-data", "deploy", "healthcheck", "smoke",
        "--runtime", "k8s", "--dry-run", env=clean_env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "k8s: overlay=dev namespace=mlstack" in result.stdout
    # build runs compose's image build (no kubectl); validate-data runs no kubectl either.
    assert plan_lines(result.stdout) == PLATFORM + DEPLOY + HEALTHCHECK + SMOKE


def test_dry_run_follows_the_overlay_context_and_image_tag(tmp_path: Path) -> None:
    require_binary("kubectl")
    env = clean_env(
        **{K8S_OVERLAY_ENV: "prod", K8S_CONTEXT_ENV: "prod-cluster", IMAGE_TAG_ENV: "1.4.0"},
        MLSTACK__SERVICES__STATE_DIR=str(tmp_path / "state"),
    )
    result = mlstack("stage", "deploy", "--runtime", "k8s", "--dry-run", env=env)
    assert result.returncode == 0, result.stderr
    wrapper = os.path.relpath(tmp_path / "state" / "k8s" / "prod", REPO_ROOT)
    ctx = "kubectl --context prod-cluster --namespace mlstack"
    assert plan_lines(result.stdout) == [
        f"deploy: kubectl --context prod-cluster apply --server-side --field-manager=mlstack -k {wrapper}"
        " --selector app.kubernetes.io/component=serving",
        f"deploy: {ctx} rollout status deployment/api --timeout=120s",
        f"deploy: {ctx} rollout status deployment/exporter --timeout=120s",
    ]


def test_an_unknown_runtime_or_overlay_is_refused() -> None:
    result = mlstack("stage", "deploy", "--runtime", "k9s", "--dry-run", env=clean_env())
    assert result.returncode == 2
    assert "k8s" in result.stderr
    result = mlstack(
        "stage", "deploy", "--runtime", "k8s", "--dry-run", env=clean_env(**{K8S_OVERLAY_ENV: "qa"})
    )
    assert result.returncode != 0
    assert "unknown overlay 'qa'" in result.stdout + result.stderr


@pytest.mark.parametrize(("stages", "expected"), [(["platform"], PLATFORM), (["deploy"], DEPLOY)])
def test_a_real_run_executes_exactly_the_printed_commands(
    tmp_path: Path, stages: list[str], expected: list[str]
) -> None:
    """The real CLI and runtime code path, against the FAKE kubectl that records its arguments."""
    real = require_binary("kubectl")
    log = tmp_path / "calls.jsonl"
    env = clean_env(
        **fake_kubectl.install(tmp_path / "bin", log, real),
        MLSTACK__SERVICES__STATE_DIR=str(tmp_path / "state"),
        # The end-of-run summary asks MLflow for the champion: none runs here, so fail fast.
        MLFLOW_TRACKING_URI="http://127.0.0.1:9",
        MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
        MLFLOW_HTTP_REQUEST_TIMEOUT="2",
    )
    result = mlstack("stage", *stages, "--runtime", "k8s", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    recorded = [c for c in fake_kubectl.calls(log) if c[0] != "kustomize"]
    assert recorded == [shlex.split(line.split(": ", 1)[1])[1:] for line in expected]
    # The summary says how to reach the services instead of opening tunnels for it.
    assert "port-forward --address 127.0.0.1 service/grafana 3000:3000" in result.stdout
    assert not [c for c in recorded if "port-forward" in c]
