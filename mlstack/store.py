"""The prediction store: every served prediction and its ground-truth feedback (SQLite or PostgreSQL)."""

from __future__ import annotations

import contextlib
import io
import json
import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain, repeat
from pathlib import Path
from typing import Any, Literal

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

# Feedback quarantine (mlstack.quarantine): labelled predictions left out of training, and every decision
# about them. Only that module reads and writes these two tables.
feedback_quarantine = sa.Table(
    "feedback_quarantine",
    metadata,
    sa.Column("prediction_id", sa.String(64), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),  # excluded | restored
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("detected_at", sa.Float, nullable=False),
    sa.Column("decided_by", sa.String(200), nullable=False),  # "pipeline" or the operator
    sa.Column("decided_at", sa.Float, nullable=False),
)

feedback_audit = sa.Table(
    "feedback_audit",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("prediction_id", sa.String(64), nullable=False, index=True),
    sa.Column("action", sa.String(16), nullable=False),  # quarantined | released | excluded | restored
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
)

_PREDICTION_COLUMNS = tuple(column.name for column in predictions.columns)
#: 7 columns x 500 rows stays far below SQLite's limit of 32766 bound parameters per statement.
SQLITE_ROWS_PER_STATEMENT = 500
SqliteSynchronous = Literal["normal", "full"]


@lru_cache(maxsize=8)
def _sqlite_insert(rows: int) -> str:
    placeholders = "(" + ",".join("?" * len(_PREDICTION_COLUMNS)) + ")"
    return (
        f"INSERT INTO predictions ({','.join(_PREDICTION_COLUMNS)}) VALUES {','.join([placeholders] * rows)}"
    )


_SCHEMA_LOCK_KEY = 0x6D6C737461636B  # "mlstack": the advisory lock around schema creation
_POSTGRES_COPY = f"COPY predictions ({','.join(_PREDICTION_COLUMNS)}) FROM STDIN"


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


@dataclass(frozen=True)
class PredictionRows:
    """One request's predictions, column by column: the unit the prediction log writes and acknowledges.

    Column-wise so that turning a request into rows costs no per-row Python objects on the request
    path; the writer serialises the JSON columns in bulk.
    """

    ids: Sequence[str]
    ts: float
    model_name: str
    model_version: str
    features: Sequence[Mapping[str, Any]]  # the instances as sent
    labels: Sequence[int]
    probabilities: Sequence[Sequence[float]]  # class order

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_records(cls, records: Sequence[PredictionRecord]) -> list[PredictionRows]:
        """One single-row group per record (tests and tools that build records one by one)."""
        return [
            cls([r.id], r.ts, r.model_name, r.model_version, [r.features], [r.prediction], [r.probabilities])
            for r in records
        ]

    def json_columns(self) -> tuple[list[str], list[str]]:
        """The `features` and `probabilities` columns as JSON text (orjson, mapped in C)."""
        features = list(map(bytes.decode, map(_dumps, self.features)))
        probabilities = list(map(bytes.decode, map(_dumps, self.probabilities)))
        return features, probabilities


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=_NUMPY)


def _copy_escape(text: str) -> str:
    """COPY text-format escaping for free text (model name and version)."""
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


class StoreBusy(Exception):
    """Another connection holds SQLite's write lock right now; nothing was written, try again soon."""


class LogAppender:
    """The prediction-log writer's own connection: every `append` is one committed transaction.

    SQLite: one multi-row INSERT per 500 rows, WAL journal. `nonblocking` (the predictor's event-loop
    writer): the write lock is taken up front (`BEGIN IMMEDIATE`) without waiting: `StoreBusy` when
    another worker holds it, so the caller retries later instead of blocking its event loop in
    SQLite's busy handler; automatic checkpoints are off (a `WalCheckpointer` thread runs them, so
    a commit never copies the WAL into the database on the request path).
    PostgreSQL: one COPY per transaction. Ids are random 128-bit values, so a plain INSERT/COPY is
    enough: a transaction that failed is rolled back whole and its requests were refused, never
    retried under the same ids. Any other error closes the connection; the next append opens a new one.
    """

    def __init__(
        self,
        store: PredictionStore,
        synchronous: SqliteSynchronous = "normal",
        busy_timeout_s: float = 5.0,
        nonblocking: bool = False,
    ):
        self.store = store
        self.synchronous = synchronous
        self.busy_timeout_s = busy_timeout_s
        self.dialect = store.engine.dialect.name
        self.nonblocking = nonblocking and self.dialect == "sqlite"
        self._conn: Any = None
        self._schema_ready = False

    @property
    def connected(self) -> bool:
        return self._conn is not None

    def _connect(self) -> Any:
        if not self._schema_ready:  # the store may have been down when the predictor started
            self.store.create_schema()
            self._schema_ready = True
        conn = self.store.engine.raw_connection()
        if self.dialect == "sqlite":
            cursor = conn.cursor()
            cursor.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
            busy_ms = 0 if self.nonblocking else int(self.busy_timeout_s * 1000)
            cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
            if self.nonblocking:
                cursor.execute("PRAGMA wal_autocheckpoint=0")
            cursor.close()
        return conn

    def append(self, groups: Sequence[PredictionRows]) -> int:
        """Write `groups` in one transaction and commit; returns the rows written.

        Raises:
            StoreBusy: (nonblocking) the write lock is taken; nothing was written.
            Exception: whatever the driver raised; nothing of `groups` is stored then.
        """
        if self._conn is None:
            self._conn = self._connect()
        conn = self._conn
        try:
            cursor = conn.cursor()
            if self.nonblocking:
                try:
                    cursor.execute("BEGIN IMMEDIATE")
                except sqlite3.OperationalError as exc:
                    if "locked" in str(exc) or "busy" in str(exc):
                        cursor.close()
                        raise StoreBusy(str(exc)) from None
                    raise
            written = (
                self._sqlite(cursor, groups) if self.dialect == "sqlite" else self._postgres(cursor, groups)
            )
            cursor.close()
            conn.commit()
        except StoreBusy:
            raise
        except BaseException:
            # Roll back first: the error's traceback keeps this connection alive for a while, and
            # an open transaction would keep holding SQLite's write lock against the next attempt.
            with contextlib.suppress(Exception):
                conn.rollback()
            self.close(broken=True)
            raise
        return written

    @staticmethod
    def _columns(groups: Sequence[PredictionRows]) -> tuple[list[Any], ...]:
        ids: list[str] = []
        ts: list[float] = []
        names: list[str] = []
        versions: list[str] = []
        features: list[str] = []
        labels: list[int] = []
        probabilities: list[str] = []
        for group in groups:
            count = len(group)
            ids.extend(group.ids)
            ts.extend(repeat(group.ts, count))
            names.extend(repeat(group.model_name, count))
            versions.extend(repeat(group.model_version, count))
            feature_json, probability_json = group.json_columns()
            features.extend(feature_json)
            labels.extend(group.labels)
            probabilities.extend(probability_json)
        return ids, ts, names, versions, features, labels, probabilities

    def _sqlite(self, cursor: Any, groups: Sequence[PredictionRows]) -> int:
        rows = list(zip(*self._columns(groups), strict=True))
        for start in range(0, len(rows), SQLITE_ROWS_PER_STATEMENT):
            chunk = rows[start : start + SQLITE_ROWS_PER_STATEMENT]
            cursor.execute(_sqlite_insert(len(chunk)), tuple(chain.from_iterable(chunk)))
        return len(rows)

    def _postgres(self, cursor: Any, groups: Sequence[PredictionRows]) -> int:
        parts = []
        rows = 0
        for group in groups:
            count = len(group)
            features, probabilities = group.json_columns()
            # orjson escapes control characters inside JSON strings: backslashes are all COPY needs.
            if any("\\" in text for text in features):
                features = [text.replace("\\", "\\\\") for text in features]
            rows += count
            parts.append(
                "\n".join(
                    map(
                        "\t".join,
                        zip(
                            group.ids,
                            repeat(repr(float(group.ts)), count),
                            repeat(_copy_escape(group.model_name), count),
                            repeat(_copy_escape(group.model_version), count),
                            features,
                            map(str, group.labels),
                            probabilities,
                            strict=True,
                        ),
                    )
                )
            )
        cursor.copy_expert(_POSTGRES_COPY, io.StringIO("\n".join(parts) + "\n"))
        return rows

    def close(self, broken: bool = False) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if broken:
                conn.invalidate()  # a broken connection must not go back to the pool
            else:
                conn.close()
        except Exception:  # noqa: S110 - closing a connection that already failed
            pass


class WalCheckpointer:
    """Checkpoints a SQLite WAL from a background thread, so the event-loop writer never does.

    PASSIVE checkpoints copy committed WAL frames into the database without blocking writers or
    readers; sqlite3 releases the GIL for the work. With `synchronous=NORMAL` this is also where
    the WAL is synced to disk (see docs/operations.md, "Prediction-log durability").
    """

    def __init__(self, store: PredictionStore, interval_s: float = 0.5) -> None:
        self.store = store
        self.interval_s = interval_s
        self.dirty = False  # set by the writer after a commit: something to checkpoint
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None and self.store.engine.dialect.name == "sqlite":
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="prediction-log-checkpoint", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        conn: Any = None
        while not self._stop.wait(self.interval_s):
            if not self.dirty:
                continue
            self.dirty = False
            try:
                if conn is None:
                    conn = self.store.engine.raw_connection()
                cursor = conn.cursor()
                cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
                cursor.close()
            except Exception:  # the next commit's checkpoint tries again; the writer reports errors
                self.dirty = True
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.invalidate()
                    conn = None
        if conn is not None:
            with contextlib.suppress(Exception):
                cursor = conn.cursor()
                cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")  # leave a small WAL behind
                cursor.close()
            conn.close()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None


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
        # Fail fast on an unreachable PostgreSQL host: the log writer answers 503 meanwhile.
        connect_args: dict[str, Any] = (
            {"timeout": 30, "check_same_thread": False}
            if url.startswith("sqlite")
            else {"connect_timeout": 5}
        )
        self.engine = sa.create_engine(
            _normalise_url(url), pool_pre_ping=True, connect_args=connect_args, future=True
        )
        if url.startswith("sqlite"):
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)

    def create_schema(self) -> None:
        """Create the tables if they do not exist (safe when several predictor workers start at once)."""
        with self.engine.begin() as conn:
            if self.engine.dialect.name == "postgresql":
                # Concurrent CREATE TABLE IF NOT EXISTS can collide in PostgreSQL's catalog: serialise.
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK_KEY})
            metadata.create_all(conn)

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
