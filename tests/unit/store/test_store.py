"""The prediction store's URL handling and idempotent inserts (SQLite; PostgreSQL is in test_faults)."""

from __future__ import annotations

from pathlib import Path

from mlstack.store import PredictionRecord, PredictionStore


def test_plain_postgresql_urls_use_the_locked_driver() -> None:
    store = PredictionStore("postgresql://user:secret@127.0.0.1:1/predictions")
    assert store.engine.dialect.driver == "psycopg2"
    store.dispose()


def test_inserts_are_idempotent_and_feedback_needs_a_known_prediction(tmp_path: Path) -> None:
    store = PredictionStore(f"sqlite:///{tmp_path / 'nested' / 'p.db'}")
    store.create_schema()
    record = PredictionRecord("a1", 1.0, "m", "3", {"x": 1.5}, 2, [0.1, 0.2, 0.7])
    assert store.insert_predictions([record]) == 1
    assert store.insert_predictions([record]) == 0  # a retried batch does not duplicate rows
    assert store.add_feedback("a1", 2, 2.0) and not store.add_feedback("nope", 1, 2.0)
    labelled = store.labelled()
    assert list(labelled["true_label"]) == [2] and list(labelled["x"]) == [1.5]
    assert store.count_predictions() == 1
    store.dispose()
