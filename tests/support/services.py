"""Start the predictor as a real uvicorn subprocess on a free loopback port, the way the runtimes do."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests
import yaml

from mlstack.config import Config
from mlstack.contract import ADMIN_TOKEN_ENV, CONFIG_ENV, ENV_PREFIX, FEEDBACK_TOKEN_ENV
from mlstack.runtime.local import api_command
from tests.support.net import free_port, wait_until
from tests.support.process import ServiceProcess

TEST_FEEDBACK_TOKEN = "test-feedback-token"


@dataclass
class ApiProcess:
    """A running predictor: its service process and the config it was started with."""

    service: ServiceProcess
    config: Config
    feedback_token: str | None = None

    @property
    def labeller(self) -> dict[str, str]:
        """The headers a labelling client sends with POST /feedback."""
        return {"Authorization": f"Bearer {self.feedback_token}"} if self.feedback_token else {}

    @property
    def url(self) -> str:
        return self.service.url

    @property
    def process(self) -> subprocess.Popen[bytes]:
        return self.service.process

    @property
    def log(self) -> Path:
        return self.service.log

    def log_tail(self, chars: int = 4000) -> str:
        return self.service.log_tail(chars)

    def kill(self) -> None:
        """SIGKILL the parent and every worker at once, as the OOM killer or a node failure would."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, timeout: float = 30.0) -> int:
        """Graceful stop (SIGTERM, as a service manager does); returns the exit code.

        uvicorn re-raises the signal after its graceful shutdown, so -SIGTERM is a clean stop.
        """
        if self.service.running:
            self.service.signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.service.kill()
                raise AssertionError(f"api did not stop within {timeout}s:\n{self.log_tail()}") from None
        return int(self.process.returncode)


def api_environment(
    config_file: Path,
    admin_token: str | None,
    extra: dict[str, str] | None,
    feedback_token: str | None = None,
) -> dict[str, str]:
    """The parent environment minus anything that would override the test's config file."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(ENV_PREFIX)
        and key not in {"MLFLOW_TRACKING_URI", ADMIN_TOKEN_ENV, FEEDBACK_TOKEN_ENV}
    }
    env[CONFIG_ENV] = str(config_file)
    if admin_token is not None:
        env[ADMIN_TOKEN_ENV] = admin_token
    if feedback_token is not None:
        env[FEEDBACK_TOKEN_ENV] = feedback_token
    env.update(extra or {})
    return env


@contextmanager
def run_api(
    config: Config,
    workdir: Path,
    *,
    admin_token: str | None = None,
    feedback_token: str | None = TEST_FEEDBACK_TOKEN,
    wait_ready: bool = True,
    timeout: float = 120.0,
    extra_env: dict[str, str] | None = None,
    port: int | None = None,
    workers: int = 1,
) -> Iterator[ApiProcess]:
    """Run `python -m uvicorn mlstack_api.main:app` with `config` (written to a YAML file in `workdir`).

    Args:
        config: the effective config (tracking URI, model name, store URL, intervals).
        workdir: where the config file and `api.log` go.
        admin_token: value of MLSTACK_ADMIN_TOKEN, or None to leave admin endpoints disabled.
        feedback_token: value of MLSTACK_FEEDBACK_TOKEN (`ApiProcess.labeller` sends it), or None to
            leave POST /feedback disabled.
        wait_ready: wait for /readyz (a model loaded) rather than only /healthz.
        port: listen here (a restart on the same address) instead of on a free port.
        workers: uvicorn worker processes (1 unless a test is about several).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    config_file = workdir / "mlstack-api.yaml"
    config_file.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    port = port or free_port()
    service = ServiceProcess(
        "api",
        api_command(port, workers),
        f"http://127.0.0.1:{port}",
        workdir / "api.log",  # appended to: a restart in the same workdir keeps the earlier log
        ready_path="/readyz" if wait_ready else "/healthz",
        env=api_environment(config_file, admin_token, extra_env, feedback_token),
        process_group=True,  # signals reach every worker; kill() is a whole-container crash
    )
    service.start(timeout)
    api = ApiProcess(service, config, feedback_token)
    try:
        if workers > 1:
            _wait_every_worker(api, service.ready_path, timeout, workers)
        yield api
    finally:
        service.kill()
        with contextlib.suppress(ProcessLookupError):  # workers orphaned by a killed parent
            os.killpg(service.process.pid, signal.SIGKILL)


def _wait_every_worker(api: ApiProcess, path: str, timeout: float, workers: int) -> None:
    """8 answers of 200 per worker in a row on new connections: each may land on any worker, and each
    worker loads its model on its own (one ready worker is not a ready container)."""
    streak = 0

    def ready() -> bool:
        nonlocal streak
        ok = requests.get(api.url + path, timeout=2).status_code == 200
        streak = streak + 1 if ok else 0
        return streak >= 8 * workers

    wait_until(ready, timeout=timeout, interval=0.05, what=f"every worker of {api.url} ready")


@contextmanager
def preserved_process_globals() -> Iterator[None]:
    """Undo what an in-process app changes process-wide: MLflow client URI and env, GIL interval."""
    from mlflow.tracking._tracking_service import utils

    from mlstack.registry import FAIL_FAST_CLIENT_ENV as MLFLOW_CLIENT_ENV

    saved_uri = utils._tracking_uri
    saved_env = {key: os.environ.get(key) for key in MLFLOW_CLIENT_ENV}
    saved_interval = sys.getswitchinterval()
    try:
        yield
    finally:
        utils._tracking_uri = saved_uri
        sys.setswitchinterval(saved_interval)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def served_version(api_url: str) -> str | None:
    """The version the api reports in /version, or None while it is not ready."""
    response = requests.get(f"{api_url}/version", timeout=5)
    return str(response.json()["model"]["version"]) if response.status_code == 200 else None
