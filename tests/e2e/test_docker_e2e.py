"""Docker end-to-end: build every image, run the compose stack, train in the trainer container, serve, watch.

Runs whenever a Docker engine is reachable (`pytest -m docker`); in CI it fails instead of skipping.
No image registry is reachable on CI machines, so tests/docker/build-standins.sh first builds offline
stand-ins for python:3.11-slim-bookworm, postgres:15-bookworm, prom/prometheus and prom/alertmanager
(cached by tag). Grafana and Jenkins are left out: their images (grafana/grafana-oss, jenkins/jenkins)
can be neither pulled nor stood in for here; their configuration is validated by their own tests and
by tests/integration/compose/test_compose_lint.py. The stack is reached only through 127.0.0.1
ports chosen free at run time, in its own compose project (mlstack-e2e), torn down with its
volumes at the end.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg2
import pytest
import requests
from mlflow import MlflowClient

from mlstack.config import REPO_ROOT, Config, load_config
from mlstack.data import load_base_dataset
from mlstack.runtime.compose import ComposeRuntime
from tests.support.compose import build_standins, require_docker_engine, write_env_file
from tests.support.metrics import sample_value, scrape
from tests.support.net import free_port, wait_until
from tests.support.prom import PrometheusAPI

pytestmark = [pytest.mark.docker, pytest.mark.timeout(3600)]

PROJECT = "mlstack-e2e"
MODEL = "wine-classifier"
TRAIN_STAGES = ["stage", "validate-data", "train", "register", "gate", "approve", "promote"]
# One fast candidate keeps each trainer run short; the gate logic is the same for one or five.
TRAIN_ARGS = [*TRAIN_STAGES, "--models", "logistic_regression"]
ARTIFACTS = REPO_ROOT / "test-artifacts"


@dataclass
class Stack:
    """The running e2e stack: runtime, config, secrets and where it listens."""

    runtime: ComposeRuntime
    config: Config
    secrets: dict[str, str]
    postgres_port: int
    urls: dict[str, str]
    timings: dict[str, float] = field(default_factory=dict)

    def timed(self, phase: str, started: float) -> None:
        self.timings[phase] = round(time.monotonic() - started, 1)

    def api_container(self) -> Any:
        containers = [
            c for c in self.runtime.containers("api") if c.labels.get("com.docker.compose.oneoff") != "True"
        ]
        assert len(containers) == 1, containers
        container = containers[0]
        container.reload()
        return container


def instances(rows: int = 3) -> list[dict[str, float]]:
    """Real wine rows, with the project's feature names."""
    dataset = load_base_dataset(load_config().data)
    records: list[dict[str, float]] = dataset.features.head(rows).to_dict(orient="records")
    return records


def champion_version(stack: Stack) -> str:
    client = MlflowClient(tracking_uri=stack.urls["mlflow"])
    return str(client.get_model_version_by_alias(MODEL, "champion").version)


def champion_in_postgres(stack: Stack) -> int | None:
    """The champion alias as MLflow stored it in PostgreSQL (mlflow role, published port)."""
    with (
        psycopg2.connect(
            host="127.0.0.1",
            port=stack.postgres_port,
            user="mlflow",
            password=stack.secrets["MLFLOW_DB_PASSWORD"],
            dbname="mlflow",
            connect_timeout=5,
        ) as conn,
        conn.cursor() as cur,
    ):
        cur.execute(
            "SELECT version FROM registered_model_aliases WHERE name = %s AND alias = %s", (MODEL, "champion")
        )
        row = cur.fetchone()
    return int(row[0]) if row else None


def served_version(stack: Stack) -> str | None:
    response = requests.get(f"{stack.urls['api']}/readyz", timeout=5)
    return str(response.json()["model_version"]) if response.status_code == 200 else None


def exporter_champion(stack: Stack) -> float | None:
    return sample_value(scrape(stack.urls["exporter"]), "mlops_champion_version", model=MODEL)


def train(stack: Stack, phase: str, args: list[str] | None = None) -> str:
    started = time.monotonic()
    result = stack.runtime.run_trainer(stack.config, args or TRAIN_ARGS)
    stack.timed(phase, started)
    return result.stdout + result.stderr


def dump_logs(runtime: ComposeRuntime) -> str:
    parts = [
        runtime.logs(service, tail=80)
        for service in ("postgres", "mlflow", "api", "exporter", "prometheus", "alertmanager")
    ]
    return "\n".join(parts)


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require_docker_engine()
    total = time.monotonic()
    timings: dict[str, float] = {}

    started = time.monotonic()
    build_standins()
    timings["standins"] = round(time.monotonic() - started, 1)

    ports = {
        name: free_port() for name in ("mlflow", "api", "exporter", "prometheus", "alertmanager", "grafana")
    }
    config = load_config(
        overrides={
            **{f"services.{name}_port": port for name, port in ports.items()},
            "services.healthcheck_timeout_s": 300,
        }
    )
    env_file = tmp_path_factory.mktemp("compose") / ".env"
    postgres_port = free_port()
    secrets = write_env_file(env_file)
    runtime = ComposeRuntime(
        config,
        project_name=PROJECT,
        env_file=env_file,
        exclude=["grafana"],
        extra_env={"POSTGRES_HOST_PORT": str(postgres_port), "JENKINS_HOST_PORT": str(free_port())},
    )
    runtime.down(config, volumes=True)  # leftovers of an interrupted earlier run
    failed_before = request.session.testsfailed
    stack = Stack(runtime, config, secrets, postgres_port, runtime.service_urls(config), timings)
    try:
        started = time.monotonic()
        runtime.build(config)
        stack.timed("build images", started)
        started = time.monotonic()
        runtime.start_platform(config)
        stack.timed("start platform", started)
        started = time.monotonic()
        runtime.deploy(config)
        runtime.wait_containers(["api", "exporter"], 300)
        stack.timed("deploy", started)
        yield stack
    except BaseException:
        print(dump_logs(runtime))
        raise
    finally:
        if request.session.testsfailed > failed_before:
            print(dump_logs(runtime))
        started = time.monotonic()
        runtime.down(config, volumes=True)
        stack.timed("teardown", started)
        timings["total"] = round(time.monotonic() - total, 1)
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "docker-e2e-timings.json").write_text(json.dumps(timings, indent=2))
        print(f"docker e2e timings (s): {json.dumps(timings)}")


def test_stack_trains_serves_and_hot_swaps_the_champion(stack: Stack) -> None:
    # 1. The trainer container registers and promotes a first champion in MLflow, on PostgreSQL.
    output = train(stack, "train #1")
    assert "champion v- -> v1" in output, output[-3000:]
    assert champion_version(stack) == "1"
    assert champion_in_postgres(stack) == 1

    # 2. The api (already running, no restart) picks it up and serves it.
    started = time.monotonic()
    wait_until(lambda: served_version(stack) == "1", 120, interval=1, what="api serving v1")
    stack.timed("api picks up v1", started)
    api_before = stack.api_container()
    rows = instances()
    response = requests.post(f"{stack.urls['api']}/predict", json={"instances": rows}, timeout=10)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"]["version"] == "1"
    assert len(body["predictions"]) == len(rows)
    bad = requests.post(f"{stack.urls['api']}/predict", json={"instances": [{"alcohol": "x"}]}, timeout=10)
    assert 400 <= bad.status_code < 500, bad.text

    # 3. The exporter reports the champion version from MLflow.
    wait_until(lambda: exporter_champion(stack) == 1.0, 120, interval=2, what="exporter champion=1")

    # 4. Prometheus scrapes every target (api, exporter, mlflow, alertmanager, itself) successfully.
    prometheus = PrometheusAPI(stack.urls["prometheus"])
    wait_until(
        lambda: set(prometheus.targets_up().values()) == {"up"}, 120, interval=2, what="every target up"
    )
    assert set(prometheus.targets_up()) == {"api", "exporter", "mlflow", "alertmanager", "prometheus"}
    statuses = stack.runtime.healthcheck(stack.config)
    assert statuses["grafana"].startswith("skipped")
    assert {s for n, s in statuses.items() if n != "grafana"} == {"healthy"}

    # 5. A second training run whose gate is overridden (--force, audited) promotes v2: on the same
    # data and config it only ties v1, and a tie on unchanged inputs keeps the champion (no churn).
    output = train(stack, "train #2", args=[*TRAIN_ARGS, "--force"])
    assert "champion v1 -> v2" in output, output[-3000:]
    assert champion_in_postgres(stack) == 2

    # ... and the running api switches to it without a restart.
    started = time.monotonic()
    wait_until(lambda: served_version(stack) == "2", 120, interval=1, what="api serving v2")
    stack.timed("api hot-swaps to v2", started)
    api_after = stack.api_container()
    assert api_after.attrs["State"]["StartedAt"] == api_before.attrs["State"]["StartedAt"]
    assert api_after.attrs["RestartCount"] == 0
    response = requests.post(f"{stack.urls['api']}/predict", json={"instances": rows}, timeout=10)
    assert response.json()["model"]["version"] == "2"
    wait_until(lambda: exporter_champion(stack) == 2.0, 120, interval=2, what="exporter champion=2")


def test_a_killed_api_comes_back(stack: Stack) -> None:
    """SIGKILL the api's process (as the OOM killer would): the restart policy brings it back."""
    container = stack.api_container()
    restarts = container.attrs["RestartCount"]
    pid = container.attrs["State"]["Pid"]
    assert pid > 0
    try:
        os.kill(pid, signal.SIGKILL)  # `docker kill` would count as a manual stop and not restart
    except PermissionError:
        pytest.skip("killing a container's process needs root on the Docker host")
    wait_until(
        lambda: stack.api_container().attrs["RestartCount"] > restarts, 60, interval=1, what="api restart"
    )
    wait_until(lambda: served_version(stack) is not None, 120, interval=1, what="api ready again")
    assert served_version(stack) == champion_version(stack)
