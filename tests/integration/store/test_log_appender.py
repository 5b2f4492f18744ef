"""The prediction-log appender on both stores: one transaction per append, text round-trips exactly.

PostgreSQL runs for real (a throwaway cluster as the `postgres` user); its COPY path needs escaping
for free text, so the values here contain tabs, newlines, backslashes, quotes and non-ASCII.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
import sqlalchemy as sa

from mlstack.store import LogAppender, PredictionRows, PredictionStore, predictions
from tests.support.postgres import postgres_cluster

pytestmark = pytest.mark.integration

AWKWARD = ["tab\there", "new\nline", "back\\slash", 'quote"d', "ünïcode ✓"]


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PredictionStore]:
    if request.param == "sqlite":
        created = PredictionStore(f"sqlite:///{tmp_path / 'p.db'}")
        yield created
        created.dispose()
        return
    with postgres_cluster() as cluster:
        created = PredictionStore(cluster.create_database("predictions"))
        yield created
        created.dispose()


def group(index: int, name: str) -> PredictionRows:
    features = [{AWKWARD[(index + i) % len(AWKWARD)]: 1.5 + i, "plain": -2e-7 * i} for i in range(3)]
    return PredictionRows(
        [f"{index:02d}{i:030d}" for i in range(3)],
        1_700_000_000.123456 + index,
        name,
        f"v{index}\\x",
        features,
        [0, 1, 2],
        [[0.1, 0.2, 0.7], [1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3]],
    )


def test_groups_round_trip_exactly(store: PredictionStore) -> None:
    appender = LogAppender(store)  # creates the schema on its first connection
    groups = [group(i, AWKWARD[i]) for i in range(len(AWKWARD))]
    try:
        assert appender.append(groups[:2]) == 6
        assert appender.append(groups[2:]) == 9
    finally:
        appender.close()
    with store.engine.connect() as conn:
        rows = {row.id: row for row in conn.execute(sa.select(predictions))}
    assert len(rows) == 15
    for g in groups:
        for i, prediction_id in enumerate(g.ids):
            row = rows[prediction_id]
            assert (row.ts, row.model_name, row.model_version) == (g.ts, g.model_name, g.model_version)
            assert json.loads(row.features) == g.features[i]
            assert (row.prediction, json.loads(row.probabilities)) == (g.labels[i], g.probabilities[i])


def test_a_failed_transaction_stores_nothing_and_the_next_append_reconnects(store: PredictionStore) -> None:
    appender = LogAppender(store)
    try:
        first = group(1, "m")
        appender.append([first])
        clash = group(2, "m")
        duplicate = PredictionRows(
            first.ids[:1], time.time(), "m", "1", [{"x": 1.0}], [0], [[1.0, 0.0, 0.0]]
        )  # an id already stored: the primary key refuses the whole transaction
        with pytest.raises((sqlite3.IntegrityError, psycopg2.IntegrityError)):
            appender.append([clash, duplicate])
        assert not appender.connected
        assert appender.append([clash]) == 3
    finally:
        appender.close()
    assert store.count_predictions() == 6
