"""Pipeline faults on the real local runtime (`mlstack run --runtime local`): MLflow, predictor and
exporter run as processes on free loopback ports, and the predictor serves traffic throughout.

- A failure injected at a stage (MLSTACK_FAIL_STAGE) leaves the champion, or, after a promotion,
  rolls it back; the predictor then serves the previous version again, without a failed request.
- Two `mlstack run` at once: the second is refused by the lock, the first completes, the registry
  holds exactly one new version and one champion move.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from mlflow import MlflowClient

from mlstack import registry
from mlstack.config import REPO_ROOT, load_config
from mlstack.contract import FAIL_STAGE_ENV
from mlstack.data import load_base_dataset
from tests.support.net import free_port, wait_until
from tests.support.services import served_version
from tests.support.traffic import Traffic
from tests.support.traffic import record_numbers as record

pytestmark = pytest.mark.integration
MODEL = "wine-classifier"
RUN = ["run", "--models", "logistic_regression"]


@dataclass
class LocalStack:
    """An isolated local runtime: its env (state dir, ports), the api URL and the tracking URI."""

    env: dict[str, str]

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.env['MLSTACK__SERVICES__API_PORT']}"

    @property
    def tracking_uri(self) -> str:
        return self.env["MLFLOW_TRACKING_URI"]

    @property
    def state_dir(self) -> Path:
        return Path(self.env["MLSTACK__SERVICES__STATE_DIR"])

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "mlstack.cli", *args]

    def mlstack(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args),
            env={**self.env, **(env or {})},
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=900,
        )

    def champion(self) -> str:
        client = MlflowClient(tracking_uri=self.tracking_uri)
        return str(client.get_model_version_by_alias(MODEL, "champion").version)

    def version_count(self) -> int:
        client = MlflowClient(tracking_uri=self.tracking_uri)
        return len(client.search_model_versions(f"name = '{MODEL}'"))

    def history(self) -> list[registry.AliasMove]:
        return registry.history(MlflowClient(tracking_uri=self.tracking_uri), MODEL)


def isolated_env(state_dir: Path) -> dict[str, str]:
    """The developer's environment minus any mlstack setting, plus own state dir and free ports."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("MLSTACK") and key not in {"MLFLOW_TRACKING_URI", FAIL_STAGE_ENV}
    }
    env.update(
        {
            "MLSTACK__SERVICES__STATE_DIR": str(state_dir),
            "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}",
            "MLSTACK__API__RELOAD_INTERVAL_S": "0.5",
            "MLSTACK__EXPORTER__REFRESH_INTERVAL_S": "2",
            **{
                f"MLSTACK__SERVICES__{name}_PORT": str(free_port())
                for name in ("API", "EXPORTER", "PROMETHEUS", "ALERTMANAGER", "TRIGGER")
            },
        }
    )
    return env


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    stack = LocalStack(isolated_env(tmp_path_factory.mktemp("local-faults") / "state"))
    try:
        first = stack.mlstack(*RUN)
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
        wait_until(lambda: served_version(stack.api) == stack.champion(), 60, what="api serving v1")
        yield stack
    finally:
        stack.mlstack("services", "stop")


@functools.cache
def instance() -> dict[str, float]:
    """A real wine row, by feature name."""
    row: dict[str, float] = load_base_dataset(load_config().data).features.iloc[0].to_dict()
    return row


# Stages that fail before anything moves (train, register and gate are covered registry-side by
# tests/integration/pipeline/test_pipeline_integration.py; the first and the last of them run here
# with a live predictor),
# then the post-promotion ones that must roll back.
BEFORE_PROMOTION = ["validate-data", "promote"]
AFTER_PROMOTION = ["deploy", "healthcheck", "smoke"]


def test_a_failure_at_each_stage_leaves_or_restores_the_champion_and_it_keeps_serving(
    local_stack: LocalStack,
) -> None:
    good = local_stack.champion()
    versions = local_stack.version_count()
    outcomes: dict[str, dict[str, object]] = {}
    with Traffic(local_stack.api, instance(), workers=2, max_requests=200_000, max_seconds=1500) as traffic:
        for stage in BEFORE_PROMOTION + AFTER_PROMOTION:
            started = time.monotonic()
            result = local_stack.mlstack(*RUN, "--force", env={FAIL_STAGE_ENV: stage})
            assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
            assert f"stage '{stage}' failed" in result.stderr, result.stderr[-2000:]
            assert local_stack.champion() == good, f"{stage}: champion moved"
            if stage in AFTER_PROMOTION:
                assert "(champion rolled back)" in result.stderr, result.stderr[-2000:]
                last = local_stack.history()[-1]
                assert (last.alias, last.to_version, last.reason) == (
                    "champion",
                    good,
                    f"auto-rollback: {stage} failed",
                )
            # The predictor follows the alias back (if it had followed the promotion at all).
            wait_until(
                lambda: served_version(local_stack.api) == good, 30, what=f"api serving v{good} ({stage})"
            )
            response = requests.post(
                f"{local_stack.api}/predict", json={"instances": [instance()]}, timeout=5
            )
            assert response.status_code == 200 and response.json()["model"]["version"] == good
            outcomes[stage] = {
                "exit": result.returncode,
                "versions_registered": local_stack.version_count() - versions,
                "seconds": round(time.monotonic() - started, 1),
            }
        served = traffic.stop()
    record(
        "stage_failures_local_runtime",
        {
            "champion": good,
            "stages": outcomes,
            "requests_sent": served.sent,
            "acknowledged": served.acknowledged,
            "failed_requests": dict(served.failures),
            "served_versions": dict(served.versions),
        },
    )
    assert served.failures == {}, served.failures  # no request failed across the failed pipeline runs
    assert served.acknowledged > 0


def test_a_second_concurrent_run_is_refused_and_the_registry_stays_consistent(
    local_stack: LocalStack,
) -> None:
    before_versions = local_stack.version_count()
    before_moves = len(local_stack.history())
    first = subprocess.Popen(
        local_stack.command(*RUN, "--force"),
        env=local_stack.env,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lock = local_stack.state_dir / "pipeline.lock"
        wait_until(
            lambda: lock.read_text().startswith(f"pid {first.pid} "), 60, interval=0.05, what="lock held"
        )
        assert first.poll() is None, "the first run finished before the second could start"
        second = local_stack.mlstack(*RUN, "--force")
        first_out, first_err = first.communicate(timeout=900)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(timeout=30)
    assert second.returncode == 3, second.stdout[-2000:] + second.stderr[-2000:]
    assert f"another pipeline run is in progress (pid {first.pid} since" in second.stderr
    assert first.returncode == 0, first_out[-3000:] + first_err[-3000:]

    # Exactly the first run's work is in the registry: one version, registered and promoted once.
    new = str(before_versions + 1)
    assert local_stack.version_count() == before_versions + 1
    assert local_stack.champion() == new
    moves = local_stack.history()[before_moves:]
    assert [(m.alias, m.to_version) for m in moves] == [("challenger", new), ("champion", new)]
    wait_until(lambda: served_version(local_stack.api) == new, 30, what=f"api serving v{new}")
    record(
        "concurrent_runs",
        {"second_exit": second.returncode, "first_exit": first.returncode, "new_version": new},
    )
