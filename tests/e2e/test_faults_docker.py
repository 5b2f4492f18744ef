"""Compose-level faults (docker marker): the MLflow container stopped while the predictor serves, and
the api container's process SIGKILLed under load.

Runs its own compose project (`mlstack-faults`, free loopback ports, volumes removed at the end) so it
never touches the e2e test's stack or a developer's; images, stand-ins and helpers are the e2e test's.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import psycopg2
import pytest
import requests

from mlstack.config import load_config
from mlstack.runtime.compose import ComposeRuntime
from tests.e2e.test_docker_e2e import (
    TRAIN_ARGS,
    Stack,
    champion_version,
    dump_logs,
    instances,
    served_version,
)
from tests.support.compose import build_standins, require_docker_engine, write_env_file
from tests.support.metrics import sample_value, scrape
from tests.support.net import free_port, wait_until
from tests.support.traffic import Traffic, record_numbers

pytestmark = [pytest.mark.docker, pytest.mark.timeout(2400)]

PROJECT = "mlstack-faults"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The compose stack (no Grafana, no Jenkins) with a trained champion v1 being served."""
    require_docker_engine()
    build_standins()
    ports = {
        name: free_port() for name in ("mlflow", "api", "exporter", "prometheus", "alertmanager", "grafana")
    }
    config = load_config(
        overrides={
            **{f"services.{name}_port": port for name, port in ports.items()},
            "services.healthcheck_timeout_s": 300,
        }
    )
    env_file = tmp_path_factory.mktemp("compose-faults") / ".env"
    secrets = write_env_file(env_file)
    postgres_port = free_port()
    runtime = ComposeRuntime(
        config,
        project_name=PROJECT,
        env_file=env_file,
        exclude=["grafana"],
        extra_env={"POSTGRES_HOST_PORT": str(postgres_port), "JENKINS_HOST_PORT": str(free_port())},
    )
    runtime.down(config, volumes=True)
    stack = Stack(runtime, config, secrets, postgres_port, runtime.service_urls(config))
    try:
        runtime.build(config)
        runtime.start_platform(config)
        runtime.deploy(config)
        runtime.wait_containers(["api", "exporter"], 300)
        trained = runtime.run_trainer(config, TRAIN_ARGS)
        assert "champion v- -> v1" in trained.stdout + trained.stderr
        wait_until(lambda: served_version(stack) == "1", 180, interval=1, what="api serving v1")
        yield stack
    except BaseException:
        print(dump_logs(runtime))
        raise
    finally:
        runtime.down(config, volumes=True)


def api_metric(stack: Stack, name: str, **labels: str) -> float:
    return sample_value(scrape(stack.urls["api"]), name, **labels) or 0.0


def exporter_metric(stack: Stack, name: str, **labels: str) -> float | None:
    return sample_value(scrape(stack.urls["exporter"]), name, **labels)


def test_mlflow_container_down_the_predictor_keeps_serving(stack: Stack) -> None:
    # Precondition: the exporter has refreshed the registry once, so it has last values to keep.
    wait_until(
        lambda: exporter_metric(stack, "mlops_champion_version", model="wine-classifier") == 1.0,
        180,
        interval=1,
        what="exporter has seen the champion",
    )
    failures_before = api_metric(stack, "mlops_model_reload_total", result="failure")
    stack.runtime.compose(stack.config, "stop", "mlflow")
    try:
        with Traffic(stack.urls["api"], instances(1)[0], workers=2, max_seconds=420) as traffic:
            wait_until(
                lambda: (
                    api_metric(stack, "mlops_model_reload_total", result="failure") >= failures_before + 2
                ),
                60,
                interval=1,
                what="failed alias polls counted",
            )
            ready = requests.get(f"{stack.urls['api']}/readyz", timeout=5)
            reload_error = requests.get(f"{stack.urls['api']}/version", timeout=5).json()["last_reload_error"]
            # The exporter marks its registry source down and keeps the last values.
            stopped_at = time.monotonic()
            wait_until(
                lambda: exporter_metric(stack, "mlops_exporter_source_up", source="registry") == 0,
                300,
                interval=2,
                what="exporter registry source down",
            )
            exporter_noticed_s = time.monotonic() - stopped_at
            champion_during = exporter_metric(stack, "mlops_champion_version", model="wine-classifier")
            result = traffic.stop()
    finally:
        stack.runtime.compose(stack.config, "start", "mlflow")
    stack.runtime.wait_containers(["mlflow"], 300)
    record_numbers(
        "compose_mlflow_down",
        {
            "requests_sent": result.sent,
            "acknowledged": result.acknowledged,
            "failed_requests": dict(result.failures),
            "served_versions": dict(result.versions),
            "seconds_until_exporter_marks_registry_down": round(exporter_noticed_s, 1),
        },
    )
    assert result.failures == {} and result.acknowledged > 0, result.failures
    assert set(result.versions) == {"1"}
    assert ready.status_code == 200
    assert reload_error and "cannot resolve" in reload_error
    assert champion_during == 1.0
    wait_until(
        lambda: exporter_metric(stack, "mlops_exporter_source_up", source="registry") == 1,
        120,
        interval=2,
        what="exporter registry source up again",
    )
    assert champion_version(stack) == "1"


def stored_ids(stack: Stack) -> set[str]:
    with (
        psycopg2.connect(
            host="127.0.0.1",
            port=stack.postgres_port,
            user="predictions",
            password=stack.secrets["PREDICTIONS_DB_PASSWORD"],
            dbname="predictions",
            connect_timeout=5,
        ) as conn,
        conn.cursor() as cur,
    ):
        cur.execute("SELECT id FROM predictions")
        return {row[0] for row in cur.fetchall()}


def test_api_sigkilled_under_load_comes_back_and_loses_no_acknowledged_prediction(stack: Stack) -> None:
    container = stack.api_container()
    restarts = container.attrs["RestartCount"]
    pid = container.attrs["State"]["Pid"]
    with Traffic(
        stack.urls["api"], instances(1)[0], workers=4, max_requests=1_000_000, max_seconds=400, timeout=5
    ) as traffic:
        wait_until(lambda: traffic.acknowledged >= 200, 60, interval=0.05, what="traffic flowing")
        killed_at = time.monotonic()
        try:
            os.kill(pid, signal.SIGKILL)  # `docker kill` counts as a manual stop: no restart
        except PermissionError:
            pytest.skip("killing a container's process needs root on the Docker host")
        wait_until(
            lambda: stack.api_container().attrs["RestartCount"] > restarts, 60, interval=0.5, what="restart"
        )
        wait_until(lambda: served_version(stack) == "1", 180, interval=0.5, what="api ready again")
        recovered_s = time.monotonic() - killed_at
        after = traffic.acknowledged
        wait_until(lambda: traffic.acknowledged > after + 50, 60, interval=0.2, what="traffic after restart")
        result = traffic.stop()
    stored = stored_ids(stack)  # every acknowledged id is committed already: no drain needed
    lost = {pid_ for pid_ in result.acked if pid_ not in stored}
    numbers = {
        "requests_sent": result.sent,
        "acknowledged": result.acknowledged,
        "stored": len(set(result.acked) & stored),
        "lost": len(lost),
        "failed_requests_during_restart": dict(result.failures),
        "seconds_to_ready": round(recovered_s, 1),
    }
    record_numbers("compose_api_sigkill", numbers)
    # Acknowledged means committed to PostgreSQL: the kill takes nothing acknowledged with it.
    assert result.acknowledged > 0 and not lost, numbers
    stack.runtime.wait_containers(["api"], 300)
