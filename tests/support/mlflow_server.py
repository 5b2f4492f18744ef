"""A real MLflow tracking server process for tests (SQLite backend, proxied artifacts, free port)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from tests.support.net import free_port
from tests.support.process import ServiceProcess


@dataclass
class MlflowServer:
    """A running `mlflow server`; `stop()` kills it, `start()` brings it back on the same port and data."""

    root: Path
    port: int
    backend_uri: str | None = None  # default: sqlite:///<root>/mlflow.db
    service: ServiceProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> MlflowServer:
        argv = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            self.backend_uri or f"sqlite:///{self.root / 'mlflow.db'}",
            "--artifacts-destination",
            str(self.root / "artifacts"),
            "--serve-artifacts",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
        ]
        # Its own process group: `mlflow server` forks its web workers, and a stop must reach them.
        self.service = ServiceProcess(
            "mlflow", argv, self.url, self.root / "server.log", ready_path="/health", process_group=True
        )
        self.service.start(timeout)
        return self

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop(timeout=15)
        self.service = None


def start_mlflow_server(root: Path) -> MlflowServer:
    """Start a fresh MLflow server under `root` on a free port."""
    return MlflowServer(root=root, port=free_port()).start()
