"""The prediction-log writer: a bounded in-memory buffer drained to the prediction store in batches."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from mlstack.store import PredictionRecord, PredictionStore

log = logging.getLogger(__name__)

#: Seconds between two "buffer full" log lines; every drop is counted regardless.
DROP_LOG_INTERVAL_S = 10.0


@dataclass(frozen=True)
class WriterStats:
    """A snapshot of the writer's counters, for metrics and tests."""

    depth: int
    written: int
    dropped: int
    write_errors: int


class PredictionLogWriter:
    """Buffers prediction records and commits them to the store from one background thread.

    `submit` is called on the request path and costs a deque append: no lock, no I/O. A full
    buffer drops the record, counts it and logs (rate-limited). The thread commits a batch when
    `batch_size` records are waiting or `flush_interval_s` has passed; a failed commit is
    counted and retried with exponential backoff while the records stay buffered. `close`
    drains the buffer (graceful shutdown).

    Args:
        store: where records go.
        queue_size: most records held in memory (including a batch being retried).
        batch_size: most records per transaction.
        flush_interval_s: longest time a record waits before its batch is committed.
        retry_initial_s / retry_max_s: backoff after a failed commit.
    """

    def __init__(
        self,
        store: PredictionStore,
        queue_size: int,
        batch_size: int,
        flush_interval_s: float,
        retry_initial_s: float = 0.1,
        retry_max_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self._clock = clock
        # Appended by request handlers, popped by the writer thread: deque ops are atomic.
        self._buffer: deque[PredictionRecord] = deque()
        self._batch: list[PredictionRecord] = []
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._progress = threading.Condition()
        self._thread: threading.Thread | None = None
        self._submitted = 0  # only the submitting (event-loop) thread writes these two
        self._dropped = 0
        self._refused = 0  # requests refused by has_room (event-loop thread only)
        self._processed = 0  # only the writer thread writes these two
        self._written = 0
        self._write_errors = 0
        self._last_drop_log = float("-inf")
        self._schema_ready = False

    # -- request path -------------------------------------------------------------------------

    def has_room(self, count: int) -> bool:
        """Whether `count` more records fit in the buffer.

        The predictor asks before it predicts and answers 503 when not, so a request is refused
        rather than acknowledged and then dropped: acknowledged predictions are only ever lost to
        a crash. Only the event-loop thread submits, so nothing can take the room in between.
        """
        if len(self._buffer) + len(self._batch) + count <= self.queue_size:
            return True
        self._refused += 1
        now = self._clock()
        if now - self._last_drop_log >= DROP_LOG_INTERVAL_S:
            self._last_drop_log = now
            log.error(
                "prediction log buffer full (%d records): refusing predictions (503), %d refused so far; "
                "is the prediction store reachable?",
                self.queue_size,
                self._refused,
            )
        return False

    def submit(self, record: PredictionRecord) -> bool:
        """Buffer one record; False (counted, logged) when the buffer is full."""
        if len(self._buffer) + len(self._batch) >= self.queue_size:
            self._dropped += 1
            now = self._clock()
            if now - self._last_drop_log >= DROP_LOG_INTERVAL_S:
                self._last_drop_log = now
                log.error(
                    "prediction log buffer full (%d records): dropping records, %d dropped so far; "
                    "is the prediction store reachable?",
                    self.queue_size,
                    self._dropped,
                )
            return False
        self._buffer.append(record)
        self._submitted += 1
        if len(self._buffer) >= self.batch_size:
            self._wake.set()
        return True

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer thread (it creates the tables on its first commit)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="prediction-log-writer", daemon=True)
        self._thread.start()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything submitted so far is committed (or dropped); False on timeout."""
        target = self._submitted
        deadline = self._clock() + timeout
        self._wake.set()
        with self._progress:
            while self._processed < target:
                remaining = deadline - self._clock()
                if remaining <= 0 or self._thread is None or not self._thread.is_alive():
                    return self._processed >= target
                self._wake.set()
                self._progress.wait(min(remaining, 0.05))
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Drain the buffer within `timeout` seconds, then stop the thread; leftovers are logged."""
        if self._thread is None:
            return
        self.flush(timeout)
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=max(1.0, self.retry_max_s))
        self._thread = None
        left = len(self._buffer) + len(self._batch)
        if left:
            log.error("prediction log closed with %d records not written (store unavailable)", left)

    @property
    def pending(self) -> int:
        """Records buffered or being written."""
        return len(self._buffer) + len(self._batch)

    def stats(self) -> WriterStats:
        return WriterStats(self.pending, self._written, self._dropped, self._write_errors)

    # -- writer thread ------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            if len(self._buffer) < self.batch_size:
                # Let a partial batch fill up for at most one flush interval (flush() wakes us early).
                self._wake.wait(self.flush_interval_s)
                self._wake.clear()
            while len(self._batch) < self.batch_size and self._buffer:
                self._batch.append(self._buffer.popleft())
            if self._batch:
                self._commit_batch()

    def _commit_batch(self) -> None:
        delay = self.retry_initial_s
        while True:
            try:
                if not self._schema_ready:
                    self.store.create_schema()
                    self._schema_ready = True
                self._written += self.store.append_predictions(self._batch)
                break
            except Exception as exc:  # any DB error: keep the records and retry
                self._write_errors += 1
                log.warning(
                    "prediction log: writing %d records failed (%s); retrying in %.1fs",
                    len(self._batch),
                    exc,
                    delay,
                )
                if self._stop.wait(delay):
                    return  # closing: close() reports what is left
                delay = min(delay * 2, self.retry_max_s)
        with self._progress:
            self._processed += len(self._batch)
            self._batch = []
            self._progress.notify_all()
