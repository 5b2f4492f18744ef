"""The prediction-log writer against a real SQLite store: batching, full buffer, DB errors, draining."""

from __future__ import annotations

import logging
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlstack.prediction_log import PredictionLogWriter
from mlstack.store import PredictionRecord, PredictionStore


def record(i: int) -> PredictionRecord:
    return PredictionRecord(
        uuid.uuid4().hex, time.time(), "wine-classifier", "3", {"x": float(i)}, i % 3, [1.0]
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[PredictionStore]:
    created = PredictionStore(f"sqlite:///{tmp_path / 'predictions.db'}")
    created.create_schema()
    yield created
    created.dispose()


def test_batches_are_committed_and_counted(store: PredictionStore) -> None:
    writer = PredictionLogWriter(store, queue_size=5000, batch_size=100, flush_interval_s=0.05)
    writer.start()
    try:
        records = [record(i) for i in range(1234)]
        assert all(writer.submit(r) for r in records)
        assert writer.flush(timeout=20)
        assert store.prediction_ids() == {r.id for r in records}
        stats = writer.stats()
        assert (stats.written, stats.dropped, stats.write_errors, stats.depth) == (1234, 0, 0, 0)
    finally:
        writer.close()


def test_partial_batch_is_written_after_the_flush_interval(store: PredictionStore) -> None:
    writer = PredictionLogWriter(store, queue_size=100, batch_size=50, flush_interval_s=0.1)
    writer.start()
    try:
        writer.submit(record(1))
        deadline = time.monotonic() + 5
        while store.count_predictions() < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert store.count_predictions() == 1
    finally:
        writer.close()


def test_full_buffer_drops_counts_and_logs(store: PredictionStore, caplog: pytest.LogCaptureFixture) -> None:
    writer = PredictionLogWriter(store, queue_size=10, batch_size=5, flush_interval_s=0.05)  # not started
    with caplog.at_level(logging.ERROR, logger="mlstack.prediction_log"):
        accepted = [writer.submit(record(i)) for i in range(15)]
    assert accepted == [True] * 10 + [False] * 5
    assert writer.stats().dropped == 5 and writer.stats().depth == 10
    assert "buffer full" in caplog.text  # logged once (rate-limited), counted every time
    writer.start()
    writer.close()
    assert store.count_predictions() == 10


def test_database_errors_are_retried_and_nothing_is_lost(store: PredictionStore, tmp_path: Path) -> None:
    """A real SQLite error (the table is renamed away), then recovery: records stay buffered meanwhile."""
    db = str(tmp_path / "predictions.db")
    writer = PredictionLogWriter(
        store, queue_size=1000, batch_size=10, flush_interval_s=0.02, retry_initial_s=0.05, retry_max_s=0.2
    )
    writer.start()
    try:
        writer.submit(record(0))
        assert writer.flush(timeout=10)
        with sqlite3.connect(db) as conn:
            conn.execute("ALTER TABLE predictions RENAME TO predictions_away")
        records = [record(i) for i in range(25)]
        for r in records:
            writer.submit(r)
        deadline = time.monotonic() + 10
        while writer.stats().write_errors < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert writer.stats().write_errors >= 2
        assert writer.pending == 25
        with sqlite3.connect(db) as conn:
            conn.execute("ALTER TABLE predictions_away RENAME TO predictions")
        assert writer.flush(timeout=10)
        assert {r.id for r in records} <= store.prediction_ids()
        assert writer.stats().written == 26 and writer.stats().depth == 0
    finally:
        writer.close()


def test_close_drains_the_buffer(store: PredictionStore) -> None:
    writer = PredictionLogWriter(store, queue_size=1000, batch_size=1000, flush_interval_s=30)
    writer.start()
    records = [record(i) for i in range(300)]
    for r in records:
        writer.submit(r)
    writer.close(timeout=10)  # the 30 s flush interval has not passed: only close() writes them
    assert store.prediction_ids() == {r.id for r in records}


def test_has_room_refuses_what_the_buffer_cannot_hold(
    store: PredictionStore, caplog: pytest.LogCaptureFixture
) -> None:
    """The predictor asks before acknowledging: a batch that does not fit is refused, not dropped later."""
    writer = PredictionLogWriter(store, queue_size=10, batch_size=100, flush_interval_s=60)
    assert writer.has_room(10) and not writer.has_room(11)
    for i in range(8):
        assert writer.submit(record(i))
    assert writer.has_room(2) and not writer.has_room(3)
    assert "refusing predictions (503)" in caplog.text
    assert writer.stats().dropped == 0
