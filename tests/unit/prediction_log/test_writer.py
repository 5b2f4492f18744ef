"""The prediction-log writer against a real SQLite store: group commit, refusals, failures, shutdown.

Every write here awaits its commit as the predictor does; "stored" is checked by reading the
database with a separate connection, never by the writer's own counters alone. Each test runs in
both writer modes: commits on the requests' event loop (SQLite's default) and in a writer thread
(PostgreSQL's; here on SQLite, whose errors and locks are real).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlstack.prediction_log import (
    LogRefused,
    PredictionLogWriter,
    RefusalReason,
    WriterHooks,
    WriterMode,
    WriterSettings,
)
from mlstack.store import PredictionRows, PredictionStore


def rows(count: int, version: str = "3") -> PredictionRows:
    return PredictionRows(
        [uuid.uuid4().hex for _ in range(count)],
        time.time(),
        "wine-classifier",
        version,
        [{"x": float(i), "y": -1.5} for i in range(count)],
        [i % 3 for i in range(count)],
        [[0.2, 0.3, 0.5]] * count,
    )


class Recorder(WriterHooks):
    def __init__(self) -> None:
        self.commits: list[int] = []
        self.failures = 0
        self.refusals: list[tuple[RefusalReason, int]] = []

    def committed(self, rows: int, seconds: float) -> None:
        self.commits.append(rows)

    def failed(self) -> None:
        self.failures += 1

    def refused(self, reason: RefusalReason, rows: int) -> None:
        self.refusals.append((reason, rows))


@pytest.fixture(params=["loop", "thread"])
def mode(request: pytest.FixtureRequest) -> WriterMode:
    chosen: WriterMode = request.param
    return chosen


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "predictions.db"


@pytest.fixture
def store(db: Path) -> Iterator[PredictionStore]:
    created = PredictionStore(f"sqlite:///{db}")
    created.create_schema()
    yield created
    created.dispose()


def stored_ids(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {row[0] for row in conn.execute("SELECT id FROM predictions")}


def writer_for(
    store: PredictionStore, hooks: Recorder, mode: WriterMode, **options: float
) -> PredictionLogWriter:
    settings: dict[str, float] = {"queue_size": 10_000, "batch_size": 1000, **options}
    writer = PredictionLogWriter(
        store,
        WriterSettings(
            queue_size=int(settings.pop("queue_size")),
            batch_size=int(settings.pop("batch_size")),
            mode=mode,
            **settings,  # type: ignore[arg-type]
        ),
        hooks=hooks,
    )
    assert writer.mode == mode
    return writer


def test_concurrent_requests_share_commits_and_each_returns_after_its_own(
    store: PredictionStore, db: Path, mode: WriterMode
) -> None:
    """200 requests at once: one transaction (the commit delay gathers them); each is stored on return."""
    hooks = Recorder()
    writer = writer_for(store, hooks, mode, batch_size=200, commit_delay_s=2.0)
    writer.start()
    batches = [rows(1) for _ in range(200)]

    async def one(batch: PredictionRows) -> bool:
        await writer.write(batch, timeout=30)
        return set(batch.ids) <= stored_ids(db)  # visible to another connection once acknowledged

    async def all_at_once() -> list[bool]:
        return await asyncio.gather(*(one(b) for b in batches))

    try:
        assert all(asyncio.run(all_at_once()))
    finally:
        writer.close()
    assert hooks.commits == [200]
    assert writer.stats().written == 200 and writer.stats().commits == 1


def test_a_request_is_never_split_and_transactions_take_whole_requests(
    store: PredictionStore, db: Path, mode: WriterMode
) -> None:
    hooks = Recorder()
    writer = writer_for(store, hooks, mode, batch_size=10, commit_delay_s=2.0)
    writer.start()
    small = [rows(4) for _ in range(3)]
    large = rows(25)

    async def scenario() -> None:
        await asyncio.gather(*(writer.write(b, timeout=30) for b in small))
        await writer.write(large, timeout=30)

    try:
        asyncio.run(scenario())
    finally:
        writer.close()
    # 4+4 fit in 10, the third 4 does not; 25 rows exceed batch_size but stay one transaction.
    assert hooks.commits == [8, 4, 25]
    assert stored_ids(db) == {i for b in [*small, large] for i in b.ids}


def test_a_failed_commit_refuses_its_requests_and_the_next_ones_until_the_store_is_back(
    store: PredictionStore, db: Path, mode: WriterMode
) -> None:
    """A real SQLite error (the table renamed away): refusals, nothing half-stored, then recovery."""
    hooks = Recorder()
    now = [0.0]  # the writer's clock: the backoff passes when the test says so
    writer = PredictionLogWriter(
        store,
        WriterSettings(100, 100, retry_initial_s=0.3, retry_max_s=0.3, mode=mode),
        hooks=hooks,
        clock=lambda: now[0],
    )
    writer.start()
    try:
        writer.write_sync(rows(2), timeout=10)
        with sqlite3.connect(db) as conn:
            conn.execute("ALTER TABLE predictions RENAME TO predictions_away")
        failing = rows(5)
        with pytest.raises(LogRefused) as refused:
            writer.write_sync(failing, timeout=10)
        assert refused.value.reason == "store_unavailable"
        assert refused.value.retry_after == "1" and "no such table" in refused.value.message
        # Within the backoff the store is not even tried: refused at once.
        failures = hooks.failures
        with pytest.raises(LogRefused, match="unavailable"):
            writer.write_sync(rows(1), timeout=10)
        assert hooks.failures == failures
        with sqlite3.connect(db) as conn:
            conn.execute("ALTER TABLE predictions_away RENAME TO predictions")
        now[0] += 0.31  # the failed commit's backoff is over: the next write is the probe
        recovered = rows(3)
        writer.write_sync(recovered, timeout=10)
    finally:
        writer.close()
    stored = stored_ids(db)
    assert set(recovered.ids) <= stored and not set(failing.ids) & stored
    assert len(stored) == 5
    assert ("store_unavailable", 5) in hooks.refusals and ("store_unavailable", 1) in hooks.refusals
    assert writer.stats().write_errors == 1


def test_a_full_queue_refuses_and_a_slow_commit_times_out(
    store: PredictionStore, db: Path, mode: WriterMode
) -> None:
    """Another connection holds the write lock: rows wait, the bound refuses, the timeout fires."""
    hooks = Recorder()
    writer = writer_for(store, hooks, mode, queue_size=10, busy_timeout_s=30.0)
    writer.start()
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    waiting = rows(8)
    after = rows(1)

    async def outcome(batch: PredictionRows, timeout: float) -> LogRefused | None:
        try:
            await writer.write(batch, timeout=timeout)
        except LogRefused as exc:
            return exc
        return None

    async def scenario() -> tuple[LogRefused | None, ...]:
        first = asyncio.ensure_future(outcome(waiting, 0.5))
        await asyncio.sleep(0.1)  # the writer took it and waits for the lock
        too_many = await outcome(rows(3), 5.0)
        timed_out = await outcome(rows(2), 0.2)
        first_outcome = await first
        blocker.execute("ROLLBACK")  # the lock is gone: the queue drains, writes work again
        for _ in range(600):
            if writer.pending == 0:
                break
            await asyncio.sleep(0.05)
        return too_many, timed_out, first_outcome, await outcome(after, 30.0)

    try:
        too_many, timed_out, first, later = asyncio.run(scenario())
    finally:
        blocker.close()
        writer.close()
    assert too_many is not None and too_many.reason == "full" and "queue_size=10" in too_many.message
    assert timed_out is not None and timed_out.reason == "timeout"
    assert first is not None and first.reason == "timeout"
    assert later is None
    reasons = [reason for reason, _ in hooks.refusals]
    assert reasons.count("full") == 1 and reasons.count("timeout") == 2
    # Timed-out rows may still be stored later (never acknowledged, never lost silently either).
    assert set(waiting.ids) | set(after.ids) <= stored_ids(db)


def test_close_commits_what_is_waiting_and_then_refuses(
    store: PredictionStore, db: Path, mode: WriterMode
) -> None:
    hooks = Recorder()
    writer = writer_for(store, hooks, mode, commit_delay_s=30.0)  # only close() ends the wait
    writer.start()
    batch = rows(7)

    async def scenario() -> None:
        pending = asyncio.ensure_future(writer.write(batch, timeout=60))
        await asyncio.sleep(0.1)
        await asyncio.get_running_loop().run_in_executor(None, writer.close)
        await pending

    asyncio.run(scenario())
    assert set(batch.ids) == stored_ids(db)
    with pytest.raises(LogRefused) as refused:
        writer.write_sync(rows(1), timeout=1)
    assert refused.value.reason == "closed"


def test_a_store_that_is_down_at_start_gets_its_schema_on_the_first_commit(
    tmp_path: Path, mode: WriterMode
) -> None:
    db = tmp_path / "later" / "predictions.db"
    store = PredictionStore(f"sqlite:///{db}")  # no create_schema: as when the store was down at startup
    writer = writer_for(store, Recorder(), mode)
    writer.start()
    try:
        batch = rows(2)
        writer.write_sync(batch, timeout=10)
    finally:
        writer.close()
        store.dispose()
    assert stored_ids(db) == set(batch.ids)
