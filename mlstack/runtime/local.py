"""Local runtime: MLflow (SQLite), predictor, exporter, monitoring and the CT trigger as local processes."""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import requests

from mlstack.config import REPO_ROOT, Config
from mlstack.contract import (
    CONFIG_ENV,
    FEEDBACK_TOKEN_ENV,
    LOOPBACK,
    PREDICTOR_APP,
    READYZ_PATH,
    TRACKING_URI_ENV,
    WEBHOOK_TOKEN_ENV,
    config_env_var,
)
from mlstack.deployment import RuntimeActionError
from mlstack.progress import report

log = logging.getLogger(__name__)


@dataclass
class Service:
    """A local process: how to start it and how to know it is healthy."""

    name: str
    command: list[str]
    health_url: str
    env: dict[str, str] = field(default_factory=dict)
    ready: Callable[[requests.Response], bool] = lambda r: r.status_code == 200


def api_command(port: int, workers: int | None = None, host: str = LOOPBACK) -> list[str]:
    """How the predictor is started (local runtime, tests, benchmarks, the image): `python -m mlstack_api`.

    `workers` None leaves the count to `api.workers` (default: one per CPU). The app is named
    explicitly so a benchmark can run a bare app on exactly the same server command line.
    """
    argv = [
        sys.executable, "-m", "mlstack_api", "--app", PREDICTOR_APP, "--host", host, "--port", str(port),
    ]  # fmt: skip
    return argv + (["--workers", str(workers)] if workers else [])


def exporter_command(port: int, host: str = LOOPBACK) -> list[str]:
    """How the exporter is started: its module entry point (as in exporter/Dockerfile), gunicorn inside."""
    return [sys.executable, "-m", "mlstack_exporter", "--host", host, "--port", str(port)]


class ProcessManager:
    """Starts detached processes with pid files and logs under the state dir."""

    def __init__(self, state_dir: Path) -> None:
        self.run_dir = state_dir / "run"
        self.log_dir = state_dir / "logs"
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    def pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def pid(self, name: str) -> int | None:
        """The pid of a running service, or None (stale pid files are removed)."""
        path = self.pid_file(name)
        if not path.exists():
            return None
        try:
            pid = int(path.read_text().strip())
            child = self._children.get(pid)
            if child is not None and child.poll() is not None:
                raise ProcessLookupError(pid)  # our own child exited (a zombie still answers kill 0)
            os.kill(pid, 0)
        except (ValueError, ProcessLookupError, PermissionError):
            path.unlink(missing_ok=True)
            return None
        return pid

    def start(self, service: Service) -> int:
        """Start a service in its own session; return its pid."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with self.log_file(service.name).open("ab") as out:
            out.write(
                f"\n--- start {time.strftime('%Y-%m-%d %H:%M:%S')}: {' '.join(service.command)}\n".encode()
            )
            out.flush()
            proc = subprocess.Popen(
                service.command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=REPO_ROOT,
                env={**os.environ, **service.env},
                start_new_session=True,
            )
        self._children[proc.pid] = proc
        self.pid_file(service.name).write_text(str(proc.pid))
        return proc.pid

    def stop(self, name: str, timeout: float = 15.0) -> bool:
        """SIGTERM the service's process group, SIGKILL after `timeout`; False if it was not running."""
        pid = self.pid(name)
        if pid is None:
            return False
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
            else:
                continue
            break
        self.pid_file(name).unlink(missing_ok=True)
        return True

    def names(self) -> list[str]:
        return sorted(p.stem for p in self.run_dir.glob("*.pid")) if self.run_dir.exists() else []

    def tail(self, name: str, lines: int = 20) -> str:
        path = self.log_file(name)
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def _healthy(service: Service) -> bool:
    try:
        return service.ready(requests.get(service.health_url, timeout=2))
    except requests.RequestException:
        return False


class LocalRuntime:
    """Everything on this machine, no Docker: `make pipeline`."""

    name = "local"

    def __init__(self, config: Config) -> None:
        self.procs = ProcessManager(config.state_dir)

    # -- service definitions -------------------------------------------------------------------
    @staticmethod
    def mlflow_port(config: Config) -> int:
        parsed = urlparse(config.mlflow.tracking_uri)
        if parsed.hostname not in {"127.0.0.1", "localhost"}:
            raise RuntimeActionError(
                "the local runtime runs MLflow itself on 127.0.0.1; "
                f"tracking_uri is {config.mlflow.tracking_uri}"
            )
        return parsed.port or 80

    def mlflow_service(self, config: Config) -> Service:
        state = config.state_dir
        port = self.mlflow_port(config)
        metrics_dir = state / "mlflow-metrics"
        metrics_dir.mkdir(parents=True, exist_ok=True)
        return Service(
            "mlflow",
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--backend-store-uri",
                f"sqlite:///{state / 'mlflow.db'}",
                "--artifacts-destination",
                str(state / "mlartifacts"),
                "--serve-artifacts",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
                "--expose-prometheus",
                str(metrics_dir),
            ],
            f"http://127.0.0.1:{port}/health",
        )

    def _service_env(self, config: Config) -> dict[str, str]:
        """What a service needs to read the run's config: the effective config file (so `--config` and
        `--set` reach the predictor and exporter, not only `$MLSTACK_CONFIG`), and the keys that
        locate the shared state, which the environment would otherwise override."""
        from mlstack.ct import effective_config_file

        env = {
            CONFIG_ENV: str(effective_config_file(config)),
            TRACKING_URI_ENV: config.mlflow.tracking_uri,
            config_env_var("prediction_store.url"): config.prediction_store_url,
            config_env_var("services.state_dir"): str(config.state_dir),
        }
        return env

    @staticmethod
    def _feedback_env(config: Config) -> dict[str, str]:
        """The predictor's feedback token: $MLSTACK_FEEDBACK_TOKEN, else generated once into the state dir."""
        from mlstack.tokens import ensure_feedback_token

        token, created = ensure_feedback_token(config)
        if created is not None:
            report(
                f"  feedback token: generated into {created} (mode 0600); POST /feedback needs "
                f"`Authorization: Bearer <it>`; set {FEEDBACK_TOKEN_ENV} to choose your own"
            )
        return {FEEDBACK_TOKEN_ENV: token}

    def app_services(self, config: Config) -> list[Service]:
        """The predictor and exporter, when their packages are installed."""
        services = []
        s = config.services
        if importlib.util.find_spec("mlstack_api") and (REPO_ROOT / "api/mlstack_api/main.py").exists():
            services.append(
                Service(
                    "api",
                    api_command(s.api_port, config.api.workers),
                    f"http://127.0.0.1:{s.api_port}{READYZ_PATH}",
                    env={**self._service_env(config), **self._feedback_env(config)},
                )
            )
        if (
            importlib.util.find_spec("mlstack_exporter")
            and (REPO_ROOT / "exporter/mlstack_exporter/__main__.py").exists()
        ):
            services.append(
                Service(
                    "exporter",
                    exporter_command(s.exporter_port),
                    f"http://127.0.0.1:{s.exporter_port}/healthz",
                    env=self._service_env(config),
                )
            )
        return services

    def monitoring_services(self, config: Config) -> list[Service]:
        """Prometheus and Alertmanager, when their binaries are on PATH."""
        prometheus = shutil.which("prometheus")
        alertmanager = shutil.which("alertmanager") or shutil.which("prometheus-alertmanager")
        missing = [n for n, p in (("prometheus", prometheus), ("alertmanager", alertmanager)) if not p]
        if missing:
            report(
                f"note: {', '.join(missing)} not on PATH: the local runtime runs without it "
                "(install Debian's prometheus / prometheus-alertmanager to get alerts locally)"
            )
        if not prometheus and not alertmanager:
            return []
        out_dir = config.state_dir / "monitoring"
        try:
            from mlstack.monitoring.render import render_monitoring

            rendered = render_monitoring(config, "local", out_dir)
        except Exception as exc:
            report(f"note: monitoring config could not be rendered ({exc}): running without Prometheus")
            return []
        s = config.services
        services = []
        if prometheus:
            services.append(
                Service(
                    "prometheus",
                    [
                        prometheus,
                        f"--config.file={rendered.prometheus_config}",
                        f"--storage.tsdb.path={config.state_dir / 'prometheus-data'}",
                        f"--web.listen-address=127.0.0.1:{s.prometheus_port}",
                        "--web.enable-lifecycle",
                    ],
                    f"http://127.0.0.1:{s.prometheus_port}/-/ready",
                )
            )
        if alertmanager:
            services.append(
                Service(
                    "alertmanager",
                    [
                        alertmanager,
                        f"--config.file={rendered.alertmanager_config}",
                        f"--storage.path={config.state_dir / 'alertmanager-data'}",
                        f"--web.listen-address=127.0.0.1:{s.alertmanager_port}",
                        "--cluster.listen-address=",
                    ],
                    f"http://127.0.0.1:{s.alertmanager_port}/-/healthy",
                )
            )
        return services

    def trigger_services(self, config: Config) -> list[Service]:
        """The CT trigger (Alertmanager's webhook receiver), when MLSTACK_WEBHOOK_TOKEN is set."""
        from mlstack.ct import effective_config_file

        if not os.environ.get(WEBHOOK_TOKEN_ENV, "").strip():
            return []
        port = config.services.trigger_port
        command = [sys.executable, "-m", "mlstack.cli", "trigger", "serve", "--config"]
        return [
            Service(
                "trigger",
                [*command, str(effective_config_file(config))],
                f"http://127.0.0.1:{port}/healthz",
                env=self._service_env(config),
            )
        ]

    # -- Runtime protocol ----------------------------------------------------------------------
    def build(self, config: Config) -> str:
        return "nothing to build: the local runtime runs from the virtualenv"

    def ensure(self, service: Service, restart: bool = False) -> str:
        """Start a service unless a healthy instance already runs; return what happened."""
        if restart:
            self.procs.stop(service.name)
        elif _healthy(service):
            return "reused"
        elif self.procs.pid(service.name):
            return "starting"
        self.procs.start(service)
        return "started"

    def start_platform(self, config: Config) -> None:
        trigger = self.trigger_services(config)
        if not trigger:
            report(
                f"note: {WEBHOOK_TOKEN_ENV} is not set: the CT trigger (Alertmanager's retrain webhook) "
                "is not started (docs/continuous-training.md)"
            )
        services = [self.mlflow_service(config), *self.monitoring_services(config), *trigger]
        for service in services:
            report(f"  {service.name}: {self.ensure(service)}")
        self.wait_healthy(services, config.services.healthcheck_timeout_s)
        self._reload_prometheus(config)

    def _reload_prometheus(self, config: Config) -> None:
        # Prometheus keeps running across pipeline runs; reload picks up a re-rendered config.
        if self.procs.pid("prometheus"):
            try:
                requests.post(f"http://127.0.0.1:{config.services.prometheus_port}/-/reload", timeout=5)
            except requests.RequestException as exc:
                log.warning("prometheus reload failed: %s", exc)

    def deploy(self, config: Config) -> None:
        services = self.app_services(config)
        if not services:
            report("  no predictor/exporter installed yet: nothing to deploy")
        for service in services:
            # The predictor hot-reloads the champion; a running healthy instance is kept.
            report(f"  {service.name}: {self.ensure(service)}")

    def all_services(self, config: Config) -> list[Service]:
        return [
            self.mlflow_service(config),
            *self.monitoring_services(config),
            *self.trigger_services(config),
            *self.app_services(config),
        ]

    def wait_healthy(self, services: list[Service], timeout: float) -> dict[str, str]:
        """Wait for every service's health URL; raise naming the ones that never became healthy."""
        deadline = time.monotonic() + timeout
        pending = {s.name: s for s in services}
        while pending and time.monotonic() < deadline:
            for name, service in list(pending.items()):
                if _healthy(service):
                    del pending[name]
                elif self.procs.pid(name) is None and not _healthy(service):
                    raise RuntimeActionError(
                        f"{name} exited during start-up; last log lines:\n{self.procs.tail(name)}"
                    )
            if pending:
                time.sleep(0.3)
        if pending:
            details = "\n".join(f"{n}: {s.health_url}\n{self.procs.tail(n)}" for n, s in pending.items())
            raise RuntimeActionError(f"not healthy after {timeout:.0f}s: {sorted(pending)}\n{details}")
        return {s.name: "healthy" for s in services}

    def healthcheck(self, config: Config) -> dict[str, str]:
        return self.wait_healthy(self.all_services(config), config.services.healthcheck_timeout_s)

    def service_urls(self, config: Config) -> dict[str, str]:
        """URLs of MLflow and of the local services that run now (by their pid files)."""
        s = config.services
        ports = {
            "api": s.api_port,
            "exporter": s.exporter_port,
            "prometheus": s.prometheus_port,
            "alertmanager": s.alertmanager_port,
            "trigger": s.trigger_port,
        }
        running = set(self.procs.names())
        urls = {"mlflow": config.mlflow.tracking_uri}
        urls.update({n: f"http://127.0.0.1:{p}" for n, p in ports.items() if n in running})
        return urls

    def stop(self, config: Config) -> None:
        for name in reversed(self.procs.names()):
            if self.procs.stop(name):
                report(f"  stopped {name}")
