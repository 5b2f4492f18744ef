"""The prediction store: every served prediction and its ground-truth feedback (SQLite or PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import sqlalchemy as sa

_NUMPY = orjson.OPT_SERIALIZE_NUMPY  # callers may pass numpy scalars; the stdlib json took them too
metadata = sa.MetaData()

predictions = sa.Table(
    "predictions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("ts", sa.Float, nullable=False, index=True),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False, index=True),
    sa.Column("features", sa.Text, nullable=False),
    sa.Column("prediction", sa.Integer, nullable=False),
    sa.Column("probabilities", sa.Text, nullable=False),
)

feedback = sa.Table(
    "feedback",
    metadata,
    sa.Column("prediction_id", sa.String(64), primary_key=True),
    sa.Column("true_label", sa.Integer, nullable=False),
    sa.Column("ts", sa.Float, nullable=False, index=True),
)


_PREDICTION_COLUMNS = tuple(column.name for column in predictions.columns)
#: 7 columns x 500 rows stays far below SQLite's limit of 32766 bound parameters per statement.
SQLITE_ROWS_PER_STATEMENT = 500


def _sqlite_insert_ignore(rows: int) -> str:
    placeholders = "(" + ",".join("?" * len(_PREDICTION_COLUMNS)) + ")"
    return (
        f"INSERT OR IGNORE INTO predictions ({','.join(_PREDICTION_COLUMNS)}) "
        f"VALUES {','.join([placeholders] * rows)}"
    )


@dataclass(frozen=True)
class PredictionRecord:
    """One served prediction, as the predictor logs it."""

    id: str
    ts: float
    model_name: str
    model_version: str
    features: dict[str, float]
    prediction: int
    probabilities: list[float]

    def as_row(self) -> dict[str, object]:
        return {
            "id": self.id,
            "ts": self.ts,
            "model_name": self.model_name,
            "model_version": self.model_version,
            # orjson: the writer serialises every logged row; the stdlib takes about twice as long.
            "features": orjson.dumps(self.features, option=_NUMPY).decode(),
            "prediction": self.prediction,
            "probabilities": orjson.dumps(self.probabilities, option=_NUMPY).decode(),
        }


def _normalise_url(url: str) -> str:
    # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; the lock and the images ship psycopg2.
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg2://" + url.split("://", 1)[1]
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the exporter read while the predictor writes; NORMAL sync keeps every committed batch
    # across a process crash (only an OS crash can lose the last commits) without an fsync per batch.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class PredictionStore:
    """Reads and writes the prediction log; one instance per process, thread-safe via the engine pool."""

    def __init__(self, url: str) -> None:
        self.url = url
        connect_args = {"timeout": 30, "check_same_thread": False} if url.startswith("sqlite") else {}
        self.engine = sa.create_engine(
            _normalise_url(url), pool_pre_ping=True, connect_args=connect_args, future=True
        )
        if url.startswith("sqlite"):
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)

    def create_schema(self) -> None:
        """Create the tables if they do not exist."""
        metadata.create_all(self.engine)

    def insert_predictions(self, records: Sequence[PredictionRecord]) -> int:
        """Insert a batch in one transaction, ignoring ids already stored (idempotent retries)."""
        if not records:
            return 0
        rows = [r.as_row() for r in records]
        with self.engine.begin() as conn:
            existing = {
                row[0]
                for row in conn.execute(
                    sa.select(predictions.c.id).where(predictions.c.id.in_([r["id"] for r in rows]))
                )
            }
            fresh = [r for r in rows if r["id"] not in existing]
            if fresh:
                conn.execute(predictions.insert(), fresh)
        return len(fresh)

    def append_predictions(self, records: Sequence[PredictionRecord]) -> int:
        """Like `insert_predictions`, but SQLite gets one multi-row INSERT per chunk, not one per row.

        The predictor's log writer thread uses this. The sqlite3 module releases and re-takes the
        GIL on every statement step; per-row steps make the writer thread stall the event loop
        hundreds of times per batch (the convoy effect), one step per chunk does not.
        """
        if not records or self.engine.dialect.name != "sqlite":
            return self.insert_predictions(records)
        rows = [r.as_row() for r in records]
        written = 0
        with self.engine.begin() as conn:
            for start in range(0, len(rows), SQLITE_ROWS_PER_STATEMENT):
                chunk = rows[start : start + SQLITE_ROWS_PER_STATEMENT]
                params = tuple(row[column] for row in chunk for column in _PREDICTION_COLUMNS)
                result = conn.exec_driver_sql(_sqlite_insert_ignore(len(chunk)), params)
                written += max(result.rowcount, 0)
        return written

    def add_feedback(self, prediction_id: str, true_label: int, ts: float) -> bool:
        """Record ground truth for a logged prediction; False when the prediction is unknown."""
        with self.engine.begin() as conn:
            found = conn.execute(sa.select(predictions.c.id).where(predictions.c.id == prediction_id)).first()
            if found is None:
                return False
            conn.execute(feedback.delete().where(feedback.c.prediction_id == prediction_id))
            conn.execute(
                feedback.insert(), {"prediction_id": prediction_id, "true_label": true_label, "ts": ts}
            )
        return True

    def count_predictions(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(predictions)).scalar_one())

    def prediction_ids(self) -> set[str]:
        with self.engine.connect() as conn:
            return {row[0] for row in conn.execute(sa.select(predictions.c.id))}

    def latest_window(self, size: int) -> pd.DataFrame:
        """The newest `size` predictions: feature columns plus `prediction`, `model_version`, `ts`."""
        query = sa.select(predictions).order_by(predictions.c.ts.desc()).limit(size)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return _expand(rows)

    def labelled(self, limit: int | None = None, since_ts: float | None = None) -> pd.DataFrame:
        """Predictions with feedback, newest first: features, `prediction`, `true_label`, `model_version`."""
        query = (
            sa.select(predictions, feedback.c.true_label, feedback.c.ts.label("feedback_ts"))
            .join(feedback, feedback.c.prediction_id == predictions.c.id)
            .order_by(feedback.c.ts.desc())
        )
        if since_ts is not None:
            query = query.where(feedback.c.ts > since_ts)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return _expand(rows)

    def dispose(self) -> None:
        self.engine.dispose()


def _expand(rows: Iterable[sa.RowMapping]) -> pd.DataFrame:
    """Turn stored rows into a frame with one column per feature."""
    records = []
    for row in rows:
        record = dict(json.loads(row["features"]))
        record.update(
            id=row["id"],
            ts=row["ts"],
            model_version=row["model_version"],
            prediction=row["prediction"],
        )
        if "true_label" in row:
            record["true_label"] = row["true_label"]
            record["feedback_ts"] = row["feedback_ts"]
        records.append(record)
    return pd.DataFrame.from_records(records)
