"""A real MLflow tracking server process for tests (SQLite backend, proxied artifacts, free port)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tests.support.net import free_port, wait_http_ok


@dataclass
class MlflowServer:
    """A running `mlflow server`; `stop()` kills it, `start()` brings it back on the same port and data."""

    root: Path
    port: int
    process: subprocess.Popen[bytes] | None = None
    backend_uri: str | None = None  # default: sqlite:///<root>/mlflow.db
    _log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> MlflowServer:
        self.root.mkdir(parents=True, exist_ok=True)
        self._log = (self.root / "server.log").open("ab")
        self.process = subprocess.Popen(
            [
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
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_http_ok(f"{self.url}/health", timeout)
        except TimeoutError:
            self.stop()
            raise RuntimeError(
                f"MLflow did not start:\n{(self.root / 'server.log').read_text()[-3000:]}"
            ) from None
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None


def start_mlflow_server(root: Path) -> MlflowServer:
    """Start a fresh MLflow server under `root` on a free port."""
    return MlflowServer(root=root, port=free_port()).start()
