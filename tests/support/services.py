"""Start the predictor as a real uvicorn subprocess on a free loopback port, the way the runtimes do."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests
import yaml

from mlstack.config import Config
from mlstack.contract import CONFIG_ENV, ENV_PREFIX
from mlstack.runtime.local import api_command
from tests.support.net import free_port


@dataclass
class ApiProcess:
    """A running predictor: base URL, process, log file and the config it was started with."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path
    config: Config

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self, timeout: float = 30.0) -> int:
        """Graceful stop (SIGTERM, as a service manager does); returns the exit code.

        uvicorn re-raises the signal after its graceful shutdown, so -SIGTERM is a clean stop.
        """
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
                raise AssertionError(f"api did not stop within {timeout}s:\n{self.log_tail()}") from None
        return int(self.process.returncode)


def api_environment(
    config_file: Path, admin_token: str | None, extra: dict[str, str] | None
) -> dict[str, str]:
    """The parent environment minus anything that would override the test's config file."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(ENV_PREFIX) and key not in {"MLFLOW_TRACKING_URI", "MLSTACK_ADMIN_TOKEN"}
    }
    env[CONFIG_ENV] = str(config_file)
    if admin_token is not None:
        env["MLSTACK_ADMIN_TOKEN"] = admin_token
    env.update(extra or {})
    return env


@contextmanager
def run_api(
    config: Config,
    workdir: Path,
    *,
    admin_token: str | None = None,
    wait_ready: bool = True,
    timeout: float = 120.0,
    extra_env: dict[str, str] | None = None,
    port: int | None = None,
) -> Iterator[ApiProcess]:
    """Run `python -m uvicorn mlstack_api.main:app` with `config` (written to a YAML file in `workdir`).

    Args:
        config: the effective config (tracking URI, model name, store URL, intervals).
        workdir: where the config file and `api.log` go.
        admin_token: value of MLSTACK_ADMIN_TOKEN, or None to leave admin endpoints disabled.
        wait_ready: wait for /readyz (a model loaded) rather than only /healthz.
        port: listen here (a restart on the same address) instead of on a free port.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    config_file = workdir / "mlstack-api.yaml"
    config_file.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    port = port or free_port()
    log = workdir / "api.log"
    argv = api_command(port)
    with log.open("ab") as sink:  # a restart in the same workdir appends
        process = subprocess.Popen(
            argv,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=api_environment(config_file, admin_token, extra_env),
        )
    api = ApiProcess(f"http://127.0.0.1:{port}", process, log, config)
    try:
        _wait_up(api, "/readyz" if wait_ready else "/healthz", timeout)
        yield api
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def _wait_up(api: ApiProcess, path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if api.process.poll() is not None:
            raise RuntimeError(f"api exited with {api.process.returncode}:\n{api.log_tail()}")
        try:
            if requests.get(api.url + path, timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"api at {api.url}{path} not up after {timeout:.0f}s:\n{api.log_tail()}")


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
