"""The prediction-log writer: group commit, so a prediction is acknowledged only once it is stored.

A request hands its rows (`PredictionRows`) to the writer and waits. The writer takes whatever is
waiting, whole requests at a time up to `batch_size` rows, writes it in one transaction and commits;
then it wakes every request of that transaction. Concurrent requests therefore share commits: each
transaction carries the rows that arrived while the previous one was being written, so the commit
rate adapts to the store instead of to the request rate.

Where the commit runs (`mode`):
- `loop` (SQLite with `synchronous=normal`): on the requests' own event loop, in a callback
  scheduled once per loop iteration, so every request that became ready in that iteration shares
  the commit. A local SQLite commit without fsync costs tens of microseconds; doing it in the loop
  avoids handing each request to a thread and back (two GIL hand-offs per commit, which cost more
  than the commit under load). The write lock is taken without waiting; when another worker holds
  it, the commit is retried a moment later instead of blocking the loop. Checkpoints run in a
  background thread (`WalCheckpointer`).
- `thread` (PostgreSQL, or SQLite with `synchronous=full`): one writer thread, because a network
  round trip or an fsync per commit must not stall the event loop; requests are woken with one
  `loop.call_soon_threadsafe` per loop and commit.

Refusals are immediate and explicit (`LogRefused`, which the predictor turns into 503 with
Retry-After): when the rows waiting would exceed `queue_size` (bounded memory), while the store is
failing (after a failed commit, for a backoff period that doubles up to `retry_max_s`), when the
commit does not come within the caller's timeout, and after `close()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Literal

from mlstack.store import (
    LogAppender,
    PredictionRows,
    PredictionStore,
    SqliteSynchronous,
    StoreBusy,
    WalCheckpointer,
)

log = logging.getLogger(__name__)

RefusalReason = Literal["full", "store_unavailable", "timeout", "closed"]
WriterMode = Literal["auto", "loop", "thread"]
#: Retries of a commit that met another worker's write lock (loop mode): first delay, cap.
BUSY_RETRY_INITIAL_S = 0.0005
BUSY_RETRY_MAX_S = 0.02
REFUSAL_REASONS: tuple[RefusalReason, ...] = ("full", "store_unavailable", "timeout", "closed")
#: Seconds between two log lines about refusals of the same reason; every refusal is counted.
REFUSAL_LOG_INTERVAL_S = 10.0


class LogRefused(Exception):
    """The rows were not stored and must not be acknowledged; retry after `retry_after_s`."""

    def __init__(self, reason: RefusalReason, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.retry_after_s = retry_after_s

    @property
    def retry_after(self) -> str:
        """The Retry-After header value: whole seconds, at least 1."""
        return str(max(1, math.ceil(self.retry_after_s)))


@dataclass(frozen=True)
class WriterStats:
    """A snapshot of the writer's counters, for tests and the shutdown log line."""

    depth: int
    written: int
    commits: int
    write_errors: int
    refused: int


class WriterHooks:
    """What the writer reports as it goes (the predictor wires these to Prometheus metrics)."""

    def committed(self, rows: int, seconds: float) -> None:
        """A transaction of `rows` rows committed in `seconds`."""

    def failed(self) -> None:
        """A transaction failed (rolled back)."""

    def refused(self, reason: RefusalReason, rows: int) -> None:
        """`rows` predictions were refused."""

    def depth(self, rows: int) -> None:
        """Rows waiting for their commit now."""


@dataclass
class _Waiting:
    """One request's rows and how to tell it the outcome."""

    rows: PredictionRows
    future: asyncio.Future[None] | Future[None]
    loop: asyncio.AbstractEventLoop | None  # None: a concurrent.futures.Future (threads)


def _expire(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


def _settle(items: list[tuple[asyncio.Future[None], BaseException | None]]) -> None:
    """Runs on the event loop: resolve the futures of one commit (skipping timed-out ones)."""
    for future, error in items:
        if not future.done():
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)


@dataclass(frozen=True)
class WriterSettings:
    """How the writer groups, commits and backs off (from the `prediction_store` config section).

    Args:
        queue_size: most rows waiting for a commit (including the transaction in flight); a request
            that would exceed it is refused, so memory stays bounded however many clients wait.
        batch_size: most rows per transaction; a request's rows are never split, so one request
            larger than this is a transaction of its own.
        commit_delay_s: how long the writer may wait for more rows before a commit (0: commit at
            once; groups still form, from the requests ready together or arriving during a commit).
        retry_initial_s / retry_max_s: how long requests are refused after a failed commit,
            doubling per consecutive failure.
        synchronous / busy_timeout_s: SQLite durability and lock wait (see `LogAppender`).
        mode: where commits run (module docstring); `auto` picks `loop` for SQLite with
            `synchronous=normal`, else `thread`.
    """

    queue_size: int
    batch_size: int
    commit_delay_s: float = 0.0
    retry_initial_s: float = 0.5
    retry_max_s: float = 5.0
    synchronous: SqliteSynchronous = "normal"
    busy_timeout_s: float = 5.0
    mode: WriterMode = "auto"


class PredictionLogWriter:
    """Writes prediction rows to the store with group commit; callers await their rows' commit.

    Args:
        store: where rows go.
        settings: queue bound, transaction size, commit delay, backoff, SQLite settings and mode.
        hooks: metrics callbacks.
        clock: monotonic time (tests move it).
    """

    def __init__(
        self,
        store: PredictionStore,
        settings: WriterSettings,
        hooks: WriterHooks | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.settings = settings
        self.queue_size = settings.queue_size
        self.batch_size = settings.batch_size
        self.commit_delay_s = settings.commit_delay_s
        self.retry_initial_s = settings.retry_initial_s
        self.retry_max_s = settings.retry_max_s
        self.hooks = hooks or WriterHooks()
        self._clock = clock
        local = store.engine.dialect.name == "sqlite" and settings.synchronous == "normal"
        mode = settings.mode
        self.mode: WriterMode = ("loop" if local else "thread") if mode == "auto" else mode
        loop_mode = self.mode == "loop"
        self._appender = LogAppender(
            store, settings.synchronous, settings.busy_timeout_s, nonblocking=loop_mode
        )
        self._checkpointer = WalCheckpointer(store) if loop_mode else None
        self._write_lock = threading.Lock()  # the appender, for the rare call from outside the loop
        self._flush_scheduled = False
        self._busy_delay = BUSY_RETRY_INITIAL_S
        self._cond = threading.Condition(threading.Lock())
        self._waiting: deque[_Waiting] = deque()
        self._pending_rows = 0  # waiting + in the transaction being written (under _cond)
        self._accepting = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._down_until = float("-inf")  # refuse until then: the last commit failed
        self._backoff = settings.retry_initial_s
        self._last_error = ""
        self._written = 0
        self._commits = 0
        self._write_errors = 0
        self._refused = 0
        self._last_refusal_log: dict[RefusalReason, float] = {}

    # -- request path -------------------------------------------------------------------------

    async def write(self, rows: PredictionRows, timeout: float) -> None:
        """Hand `rows` to the writer and return once their transaction committed.

        Raises:
            LogRefused: the rows are not (known to be) stored; answer 503 with `retry_after`.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._enqueue(_Waiting(rows, future, loop))
        expiry = loop.call_later(timeout, _expire, future)  # cheaper than asyncio.wait_for
        try:
            await future
        except TimeoutError:
            # Still queued or being written: it may yet be stored, but it is not acknowledged.
            raise self._refuse(
                "timeout", len(rows), f"the prediction store did not commit within {timeout:g}s", timeout
            ) from None
        finally:
            expiry.cancel()

    def write_sync(self, rows: PredictionRows, timeout: float) -> None:
        """`write` for threads without an event loop (tools, tests)."""
        future: Future[None] = Future()
        self._enqueue(_Waiting(rows, future, None))
        if self.mode == "loop":
            self._drain(deadline=self._clock() + timeout)
        try:
            future.result(timeout)
        except TimeoutError:
            raise self._refuse(
                "timeout", len(rows), f"the prediction store did not commit within {timeout:g}s", timeout
            ) from None

    def _enqueue(self, item: _Waiting) -> None:
        count = len(item.rows)
        with self._cond:
            if not self._accepting:
                refusal: tuple[RefusalReason, str, float] | None = (
                    "closed",
                    "the prediction log is not running (starting or shutting down)",
                    1.0,
                )
            elif (wait := self._down_until - self._clock()) > 0:
                refusal = (
                    "store_unavailable",
                    f"the prediction store is unavailable ({self._last_error})",
                    wait,
                )
            elif self._pending_rows + count > self.queue_size:
                refusal = (
                    "full",
                    f"{self._pending_rows} predictions are waiting for the prediction store "
                    f"(prediction_store.queue_size={self.queue_size})",
                    1.0,
                )
            else:
                refusal = None
                self._waiting.append(item)
                self._pending_rows += count
                if self.mode == "thread":
                    self._cond.notify()
                elif item.loop is not None and not self._flush_scheduled:
                    # After the callbacks already ready in this iteration: their requests join in.
                    self._flush_scheduled = True
                    if self.commit_delay_s > 0:
                        item.loop.call_later(self.commit_delay_s, self._flush)
                    else:
                        item.loop.call_soon(self._flush)
        if refusal is not None:
            raise self._refuse(refusal[0], count, refusal[1], refusal[2])
        self.hooks.depth(self._pending_rows)

    def _refuse(self, reason: RefusalReason, rows: int, message: str, retry_after_s: float) -> LogRefused:
        self._refused += rows
        self.hooks.refused(reason, rows)
        now = self._clock()
        if now - self._last_refusal_log.get(reason, float("-inf")) >= REFUSAL_LOG_INTERVAL_S:
            self._last_refusal_log[reason] = now
            log.error(
                "prediction log: refusing predictions (503): %s; %d refused so far", message, self._refused
            )
        return LogRefused(reason, f"{message}; nothing was stored, retry later", retry_after_s)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer thread and accept rows."""
        if self._thread is not None:
            return
        with self._cond:
            self._stopping = False
            self._accepting = True
        if self._checkpointer is not None:
            self._checkpointer.start()
        if self.mode == "thread":
            self._thread = threading.Thread(target=self._run, name="prediction-log-writer", daemon=True)
            self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Stop accepting, commit what is waiting (for up to `timeout` s), stop the thread."""
        with self._cond:
            self._accepting = False
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("prediction log: the writer did not finish within %.0fs", timeout)
            self._thread = None
        elif self.mode == "loop":
            self._drain(deadline=self._clock() + timeout)  # the loop has no more requests to run
        if self._checkpointer is not None:
            self._checkpointer.stop()
        # Whatever is still waiting was never committed: its requests get a refusal, not an ack.
        with self._cond:
            left = list(self._waiting)
            self._waiting.clear()
        if left:
            self._settle_all(left, LogRefused("closed", "the prediction log closed before the commit"))
        self._appender.close()

    # -- loop mode ------------------------------------------------------------------------------

    def _take_now(self) -> list[_Waiting]:
        """Whole requests up to `batch_size` rows from what is waiting, without waiting for more."""
        with self._cond:
            return self._pop_group() if self._waiting else []

    def _pop_group(self) -> list[_Waiting]:
        """Pop whole requests, the first one always, then more up to `batch_size` rows.

        The caller holds `_cond` and has checked that something is waiting. A request's rows are
        never split across transactions, so a request larger than `batch_size` goes alone.
        """
        group = [self._waiting.popleft()]
        rows = len(group[0].rows)
        while self._waiting and rows + len(self._waiting[0].rows) <= self.batch_size:
            item = self._waiting.popleft()
            rows += len(item.rows)
            group.append(item)
        return group

    def _flush(self) -> None:
        """Commit what is waiting (loop mode; runs on the event loop, one transaction per call)."""
        self._flush_scheduled = False
        group = self._take_now()
        if not group:
            return
        loop = next((item.loop for item in group if item.loop is not None), None)
        try:
            self._commit(group)
        except StoreBusy:
            # Another worker is committing: put the group back in front, try again shortly.
            with self._cond:
                self._waiting.extendleft(reversed(group))
            if loop is not None and not self._flush_scheduled:
                self._flush_scheduled = True
                loop.call_later(self._busy_delay, self._flush)
            self._busy_delay = min(self._busy_delay * 2, BUSY_RETRY_MAX_S)
            return
        self._busy_delay = BUSY_RETRY_INITIAL_S
        if self._waiting and loop is not None and not self._flush_scheduled:
            self._flush_scheduled = True  # more than one transaction's worth: let the loop breathe first
            loop.call_soon(self._flush)

    def _drain(self, deadline: float) -> None:
        """Commit everything waiting from the calling thread (loop mode: shutdown, `write_sync`)."""
        while group := self._take_now():
            try:
                self._commit(group)
            except StoreBusy:
                with self._cond:
                    self._waiting.extendleft(reversed(group))
                if self._clock() >= deadline:
                    return
                time.sleep(self._busy_delay)
                self._busy_delay = min(self._busy_delay * 2, BUSY_RETRY_MAX_S)

    @property
    def pending(self) -> int:
        """Rows waiting for their commit (including the transaction being written)."""
        return self._pending_rows

    def stats(self) -> WriterStats:
        return WriterStats(
            self._pending_rows, self._written, self._commits, self._write_errors, self._refused
        )

    # -- writer thread ------------------------------------------------------------------------

    def _take(self) -> list[_Waiting] | None:
        """Wait for rows; return whole requests up to `batch_size` rows (None: stop)."""
        with self._cond:
            while not self._waiting:
                if self._stopping:
                    return None
                self._cond.wait()
            if self.commit_delay_s > 0 and not self._stopping:
                deadline = self._clock() + self.commit_delay_s
                while (
                    sum(len(w.rows) for w in self._waiting) < self.batch_size
                    and (remaining := deadline - self._clock()) > 0
                    and not self._stopping
                ):
                    self._cond.wait(remaining)
            return self._pop_group()

    def _run(self) -> None:
        while (group := self._take()) is not None:
            self._commit(group)

    def _commit(self, group: list[_Waiting]) -> None:
        rows = sum(len(item.rows) for item in group)
        self.hooks.depth(self._pending_rows)
        started = time.perf_counter()
        error: BaseException | None = None
        for attempt in (1, 2):
            reused = self._appender.connected
            try:
                with self._write_lock:
                    self._written += self._appender.append([item.rows for item in group])
                error = None
                break
            except StoreBusy:
                raise  # loop mode: nothing written, the caller retries later
            except Exception as exc:  # any DB error: nothing of this transaction is stored
                error = exc
                # A pooled connection the server dropped (restart) fails once: retry on a fresh one.
                if not (reused and attempt == 1):
                    break
        if error is None:
            self._commits += 1
            self._backoff = self.retry_initial_s
            if self._checkpointer is not None:
                self._checkpointer.dirty = True
            self.hooks.committed(rows, time.perf_counter() - started)
            self._settle_all(group, None)
        else:
            self._write_errors += 1
            self.hooks.failed()
            with self._cond:
                self._last_error = _short(error)
                self._down_until = self._clock() + self._backoff
                backoff = self._backoff
                self._backoff = min(self._backoff * 2, self.retry_max_s)
                # Requests queued behind the failed transaction would meet the same store: refuse them too.
                group.extend(self._waiting)
                self._waiting.clear()
            failed_rows = sum(len(item.rows) for item in group)
            log.warning(
                "prediction log: a commit of %d rows failed (%s); refusing predictions for %.1fs",
                rows,
                self._last_error,
                backoff,
            )
            self._refused += failed_rows
            self.hooks.refused("store_unavailable", failed_rows)
            self._settle_all(
                group,
                LogRefused(
                    "store_unavailable",
                    f"the prediction store is unavailable ({self._last_error}); "
                    "nothing was stored, retry later",
                    backoff,
                ),
            )
        with self._cond:
            self._pending_rows -= sum(len(item.rows) for item in group)
        self.hooks.depth(self._pending_rows)

    def _settle_all(self, items: list[_Waiting], error: BaseException | None) -> None:
        """Tell each request its outcome: one wake-up per event loop, not one per request."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[None], BaseException | None]]] = {}
        for item in items:
            if item.loop is None:
                future = item.future
                if not future.done():
                    if error is None:
                        future.set_result(None)
                    else:
                        future.set_exception(error)
            else:
                by_loop.setdefault(item.loop, []).append((item.future, error))  # type: ignore[arg-type]
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for loop, settled in by_loop.items():
            if loop is running:
                _settle(settled)  # loop mode: we are on the requests' loop already
                continue
            with contextlib.suppress(RuntimeError):  # a closed loop (shutdown): nobody waits any more
                loop.call_soon_threadsafe(_settle, settled)


def _short(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:300]
