"""Bounded /predict traffic from worker threads, recording every acknowledged prediction id and when."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import requests


@dataclass
class TrafficResult:
    """What the clients saw: requests sent, prediction ids acknowledged (with ack times), failures."""

    sent: int
    acked: dict[str, float]  # prediction id -> monotonic time its 200 response arrived
    failures: Counter[str]
    started: float
    ended: float
    versions: Counter[str] = field(default_factory=Counter)

    @property
    def acknowledged(self) -> int:
        return len(self.acked)

    @property
    def seconds(self) -> float:
        return max(self.ended - self.started, 1e-9)

    @property
    def rate(self) -> float:
        """Acknowledged predictions per second."""
        return self.acknowledged / self.seconds


class Traffic:
    """POST /predict from `workers` threads until `stop()`, `max_requests` or `max_seconds`.

    Every request carries `rows` copies of `instance`. A 200 response acknowledges its prediction
    ids; anything else (status code or exception class) is counted in `failures`.
    """

    def __init__(
        self,
        url: str,
        instance: dict[str, Any],
        *,
        workers: int = 4,
        rows: int = 1,
        max_requests: int = 20_000,
        max_seconds: float = 60.0,
        timeout: float = 10.0,
    ) -> None:
        self.url = url.rstrip("/") + "/predict"
        self.body = {"instances": [instance] * rows}
        self.workers = workers
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.timeout = timeout
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._sent = 0
        self._acked: dict[str, float] = {}
        self._failures: Counter[str] = Counter()
        self._versions: Counter[str] = Counter()
        self._threads: list[threading.Thread] = []
        self._started = 0.0

    def __enter__(self) -> Traffic:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._started = time.monotonic()
        self._threads = [
            threading.Thread(target=self._worker, name=f"traffic-{i}", daemon=True)
            for i in range(self.workers)
        ]
        for thread in self._threads:
            thread.start()

    def _take_slot(self) -> bool:
        with self._lock:
            if self._stop.is_set() or self._sent >= self.max_requests:
                return False
            if time.monotonic() - self._started > self.max_seconds:
                return False
            self._sent += 1
            return True

    def _worker(self) -> None:
        session = requests.Session()
        while self._take_slot():
            try:
                response = session.post(self.url, json=self.body, timeout=self.timeout)
            except requests.RequestException as exc:
                with self._lock:
                    self._failures[type(exc).__name__] += 1
                time.sleep(0.01)
                continue
            now = time.monotonic()
            if response.status_code != 200:
                with self._lock:
                    self._failures[str(response.status_code)] += 1
                continue
            body = response.json()
            with self._lock:
                for prediction in body["predictions"]:
                    self._acked[prediction["id"]] = now
                self._versions[str(body["model"]["version"])] += 1
        session.close()

    @property
    def acknowledged(self) -> int:
        with self._lock:
            return len(self._acked)

    def stop(self) -> TrafficResult:
        """Stop the workers (each finishes its request in flight) and return what they saw."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.timeout + 5)
        return self.result()

    def wait(self) -> TrafficResult:
        """Wait until the request or time budget is spent."""
        for thread in self._threads:
            thread.join(timeout=self.max_seconds + self.timeout + 5)
        return self.stop()

    def result(self) -> TrafficResult:
        with self._lock:
            return TrafficResult(
                sent=self._sent,
                acked=dict(self._acked),
                failures=Counter(self._failures),
                started=self._started,
                ended=time.monotonic(),
                versions=Counter(self._versions),
            )
