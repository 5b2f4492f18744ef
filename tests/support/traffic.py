"""Bounded /predict traffic from worker threads, recording every acknowledged prediction id and when."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from mlstack.config import REPO_ROOT

NUMBERS_FILE = REPO_ROOT / "test-artifacts" / "faults.json"


def record_numbers(name: str, numbers: dict[str, Any]) -> None:
    """Print a fault test's counts and keep them in test-artifacts/faults.json (read by the report)."""
    print(f"\n{name}: {json.dumps(numbers)}")
    NUMBERS_FILE.parent.mkdir(exist_ok=True)
    existing = json.loads(NUMBERS_FILE.read_text()) if NUMBERS_FILE.exists() else {}
    existing[name] = numbers
    NUMBERS_FILE.write_text(json.dumps(existing, indent=2, sort_keys=True))


@dataclass
class TrafficResult:
    """What the clients saw: requests sent, prediction ids acknowledged (with ack times), failures."""

    sent: int
    acked: dict[str, float]  # prediction id -> monotonic time its 200 response arrived
    failures: Counter[str]
    started: float
    ended: float
    versions: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)  # the first few failures, in full, for messages

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
        on_ack: Callable[[list[str]], None] | None = None,
    ) -> None:
        self.url = url.rstrip("/") + "/predict"
        self.body = {"instances": [instance] * rows}
        self.workers = workers
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.timeout = timeout
        self.on_ack = on_ack  # called with each 200 response's prediction ids (from worker threads)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._sent = 0
        self._acked: dict[str, float] = {}
        self._failures: Counter[str] = Counter()
        self._versions: Counter[str] = Counter()
        self._examples: list[str] = []
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
                self._fail(type(exc).__name__, repr(exc))
                time.sleep(0.05)  # the server is gone: do not burn the request budget spinning
                continue
            now = time.monotonic()
            if response.status_code != 200:
                self._fail(str(response.status_code), f"{response.status_code}: {response.text[:200]}")
                continue
            body = response.json()
            with self._lock:
                for prediction in body["predictions"]:
                    self._acked[prediction["id"]] = now
                self._versions[str(body["model"]["version"])] += 1
            if self.on_ack is not None:
                self.on_ack([prediction["id"] for prediction in body["predictions"]])
        session.close()

    def _fail(self, kind: str, example: str) -> None:
        with self._lock:
            self._failures[kind] += 1
            if len(self._examples) < 5:
                self._examples.append(example)

    @property
    def running(self) -> bool:
        """Whether any worker is still sending (the budget is not spent and stop() not called)."""
        return any(thread.is_alive() for thread in self._threads)

    @property
    def acknowledged(self) -> int:
        with self._lock:
            return len(self._acked)

    def served(self, version: str) -> int:
        """Answered requests that `version` served so far (the traffic keeps running)."""
        with self._lock:
            return self._versions[version]

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
                examples=list(self._examples),
            )


def main(argv: list[str] | None = None) -> int:
    """`python -m tests.support.traffic`: the same traffic from a process of its own.

    Crash tests kill the predictor while this process keeps sending, so the client is not killed
    with it and nothing it saw is lost. Each acknowledged prediction id is appended to `--acked`
    (one per line, flushed after every response: the file is the client's record of what the
    server acknowledged); SIGTERM stops the traffic and `--summary` gets the counts as JSON.
    """
    parser = argparse.ArgumentParser(prog="python -m tests.support.traffic")
    parser.add_argument("--url", required=True)
    parser.add_argument("--instance", required=True, help="one instance as JSON")
    parser.add_argument("--acked", required=True, help="file: acknowledged prediction ids, one per line")
    parser.add_argument("--summary", required=True, help="file: JSON counts written at the end")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rows", type=int, default=1)
    parser.add_argument("--max-requests", type=int, default=200_000)
    parser.add_argument("--max-seconds", type=float, default=120.0)
    args = parser.parse_args(argv)
    lock = threading.Lock()
    with open(args.acked, "a", encoding="utf-8") as acked:

        def write(ids: list[str]) -> None:
            with lock:
                acked.write("".join(f"{i}\n" for i in ids))
                acked.flush()

        traffic = Traffic(
            args.url,
            json.loads(args.instance),
            workers=args.workers,
            rows=args.rows,
            max_requests=args.max_requests,
            max_seconds=args.max_seconds,
            timeout=5.0,
            on_ack=write,
        )
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        traffic.start()
        while not stop.wait(0.1) and traffic.running:
            pass
        result = traffic.stop()
    summary = {"sent": result.sent, "acknowledged": result.acknowledged, "failures": dict(result.failures)}
    with open(args.summary, "w", encoding="utf-8") as out:
        json.dump(summary, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
