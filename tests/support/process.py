"""One wrapper for every server process a test starts: log file, readiness poll, bounded stop.

MLflow, the predictor, the exporter, Prometheus and Alertmanager are all started through it, so a
server that dies during start-up is reported at once with its log tail (instead of a timeout), and
no test leaves a process behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests

from tests.support.net import wait_until


class ServiceStartError(RuntimeError):
    """A service exited or never became ready; the message carries its log tail."""


@dataclass
class ServiceProcess:
    """A server subprocess on loopback: `argv` logging to `log`, ready when GET `url + ready_path` is 200.

    `process_group=True` starts it in its own session and signals the whole group: for servers that
    fork workers (`mlflow server` runs gunicorn or uvicorn workers), so a stop reaches every worker.
    """

    name: str
    argv: list[str]
    url: str
    log: Path
    ready_path: str = "/"
    env: Mapping[str, str] | None = None
    process_group: bool = False
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def process(self) -> subprocess.Popen[bytes]:
        """The running (or exited) subprocess; an error before `start()`."""
        if self._process is None:
            raise RuntimeError(f"{self.name} was never started")
        return self._process

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the process log, for failure messages."""
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def start(self, timeout: float = 60.0) -> ServiceProcess:
        """Start the process and wait until it answers; on failure stop it and raise with its log."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as sink:
            self._process = subprocess.Popen(
                self.argv,
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=dict(self.env) if self.env is not None else None,
                start_new_session=self.process_group,
            )
        process = self._process
        where = f"{self.name} at {self.url}{self.ready_path}"

        def ready() -> bool:
            if process.poll() is not None:
                raise ServiceStartError(f"{self.name} exited with {process.returncode}")
            return requests.get(self.url + self.ready_path, timeout=2).status_code == 200

        try:
            wait_until(ready, timeout=timeout, what=where, reraise=ServiceStartError)
        except (TimeoutError, ServiceStartError) as exc:
            self.stop()
            raise ServiceStartError(f"{exc}\n--- {self.name} log ---\n{self.log_tail()}") from None
        return self

    def signal(self, signum: int) -> None:
        """Send `signum` to the process (or its group)."""
        if not self.running:
            return
        if self.process_group:
            os.killpg(self.process.pid, signum)
        else:
            self.process.send_signal(signum)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout` seconds; the exit code (None if never started)."""
        if self._process is None:
            return None
        if self.running:
            self.signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self._process.returncode

    def kill(self) -> None:
        """SIGKILL and reap."""
        if self.running:
            self.signal(signal.SIGKILL)
        if self._process is not None:
            self._process.wait(timeout=10)


@contextmanager
def run_service(
    name: str,
    argv: list[str],
    url: str,
    ready_path: str,
    log: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 60,
) -> Iterator[ServiceProcess]:
    """Start `argv`, wait until GET `url + ready_path` answers 200; on exit SIGTERM, then SIGKILL."""
    service = ServiceProcess(name, argv, url, log, ready_path=ready_path, env=env).start(timeout)
    try:
        yield service
    finally:
        service.stop(timeout=10)
