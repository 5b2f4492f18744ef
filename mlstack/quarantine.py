"""Feedback quarantine: labelled predictions that cannot be trained on are left out, recorded and counted.

Feedback is data nobody curated: a fuzzing client, a buggy integration or one bad labelling batch can
label absurd rows (`alcohol = 1e6`). Validation used to reject the whole training set for them, which
stopped every retrain until someone edited the store by hand. Now each labelled row is checked on its
own, with the rules validate-data applies to the base data (`mlstack.data_validation.column_issues`):

* schema: the logged features are not the model's feature names (missing or unknown ones);
* not_numeric, missing, infinite: a value that is not a number, absent where the schema allows no
  missing value, or infinite;
* out_of_range: further outside the champion's training range than `data_validation.RANGE_SLACK` ranges
  (the tolerance base data gets, so drift still reaches training and broken units do not);
* unknown_category: a category outside a closed vocabulary (`unknown: error`);
* unknown_label: a true label that is not one of the classes.

A failing row is excluded from training and recorded (prediction id, reason) in the store's
`feedback_quarantine` table; base-data errors still fail the stage. Operators review the table with
`mlstack feedback list|show` and decide with `exclude` (leave a row out although it passes) and
`restore` (train on a row although it is out of range, e.g. a genuinely new kind of input); every
decision, the pipeline's included, is appended to `feedback_audit`. A restored row is still refused
when it cannot be trained on at all (every reason but out_of_range).

The exporter applies the same check to the newest labelled rows, so an alert can say that the
excluded share is high before a retrain even runs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd
import sqlalchemy as sa

from mlstack.data_validation import (
    INFINITE,
    MISSING,
    NOT_NUMERIC,
    RANGE_SLACK,
    UNKNOWN_CATEGORY,
    column_issues,
    row_reasons,
)
from mlstack.schema import FeatureSchema
from mlstack.store import PredictionStore, feedback, feedback_audit, feedback_quarantine, predictions

# Why a row is left out: validation's own issue kinds for values (`mlstack.data_validation`), plus the row's
# shape, its label, and an operator's decision.
Kind = Literal[
    "schema",
    "not_numeric",
    "missing",
    "infinite",
    "out_of_range",
    "unknown_category",
    "unknown_label",
    "operator",
]
SCHEMA: Kind = "schema"
UNKNOWN_LABEL: Kind = "unknown_label"
OPERATOR: Kind = "operator"
# Problems no operator decision can override: the row cannot be turned into a training row.
STRUCTURAL: frozenset[str] = frozenset(
    {SCHEMA, NOT_NUMERIC, MISSING, INFINITE, UNKNOWN_CATEGORY, UNKNOWN_LABEL}
)
Status = Literal["excluded", "restored"]
EXCLUDED: Status = "excluded"
RESTORED: Status = "restored"
PIPELINE_ACTOR = "pipeline"
# Columns of a checked frame besides the features.
META_COLUMNS = ("id", "ts", "model_version", "prediction", "true_label", "feedback_ts")


@dataclass(frozen=True)
class Exclusion:
    """One labelled prediction left out of training, and why."""

    prediction_id: str
    kind: Kind
    reason: str


@dataclass(frozen=True)
class Decision:
    """An entry of the quarantine table: the row's status, who set it and why."""

    prediction_id: str
    status: Status
    kind: str
    reason: str
    detected_at: float
    decided_by: str  # "pipeline" for automatic exclusions, else the operator (registry.actor())
    decided_at: float

    @property
    def by_operator(self) -> bool:
        return self.decided_by != PIPELINE_ACTOR


@dataclass
class FeedbackCheck:
    """Labelled rows split into the usable ones (a frame) and the excluded ones (with reasons)."""

    usable: pd.DataFrame  # feature columns + META_COLUMNS, one row per usable labelled prediction
    excluded: list[Exclusion] = field(default_factory=list)
    restored: int = 0  # usable only because an operator restored them

    @property
    def used(self) -> int:
        return len(self.usable)

    def counts_by_kind(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in self.excluded:
            counts[item.kind] = counts.get(item.kind, 0) + 1
        return counts

    def summary(self) -> str:
        """`1200 used, 26 excluded (out_of_range 26)`: what a stage line says."""
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.counts_by_kind().items()))
        return f"{self.used} used, {len(self.excluded)} excluded" + (f" ({kinds})" if kinds else "")


# --------------------------------------------------------------------------- the check


def _shape_problem(features: Any, names: Sequence[str], id_column: str | None = None) -> str | None:
    """Why a logged row's features do not fit the schema's feature names (None: they do).

    The schema's id column may come along (the predictor logs it with the row); it is never a feature.
    """
    if not isinstance(features, Mapping):
        return "logged features are not an object"
    missing = [n for n in names if n not in features]
    unknown = [str(k) for k in features if k not in set(names) and k != id_column]
    if not missing and not unknown:
        return None
    parts = [f"missing {missing}" if missing else "", f"unknown {unknown}" if unknown else ""]
    return "features " + "; ".join(p for p in parts if p)


def row_problems(
    rows: Sequence[Mapping[str, Any]], schema: FeatureSchema, labels: Collection[int]
) -> list[list[tuple[Kind, str]]]:
    """Every reason each logged row cannot be trained on (an empty list: usable), in this order:
    the row's shape, its values, its label.

    Values are checked by validation's own rules (`column_issues`, `row_reasons`): types, missing
    values where the schema allows none, infinities, categories of a closed vocabulary, and numbers
    further than `RANGE_SLACK` training ranges outside the schema's range, so a feedback row meets the
    same tolerance as base data.
    """
    names = schema.feature_names
    shapes = [_shape_problem(row["features"], names, schema.id_column) for row in rows]
    records = [
        {name: row["features"].get(name) for name in names} if isinstance(row["features"], Mapping) else {}
        for row in rows
    ]
    frame = pd.DataFrame.from_records(records, columns=names)
    kinds: list[list[Kind]] = [[] for _ in rows]
    for issue in column_issues(frame, schema, range_slack=RANGE_SLACK):
        if issue.error:
            for position in issue.rows:
                kinds[int(position)].append(issue.kind)
    texts = row_reasons(frame, schema, range_slack=RANGE_SLACK) if len(frame) else pd.Series(dtype=object)
    known = ", ".join(str(v) for v in sorted(labels))
    problems: list[list[tuple[Kind, str]]] = []
    for position, row in enumerate(rows):
        found: list[tuple[Kind, str]] = []
        if shapes[position] is not None:
            found.append((SCHEMA, str(shapes[position])))
        if kinds[position]:
            found.append((kinds[position][0], str(texts.iloc[position])))
        label = row["true_label"]
        if isinstance(label, bool) or not isinstance(label, int) or label not in labels:
            found.append((UNKNOWN_LABEL, f"label {label!r} is not a class ({known})"))
        problems.append(found)
    return problems


def check_rows(
    rows: Iterable[Mapping[str, Any]],
    schema: FeatureSchema,
    labels: Collection[int],
    decisions: Mapping[str, Decision] | None = None,
) -> FeedbackCheck:
    """Split labelled store rows (`labelled_rows`) into usable and excluded, honouring operator decisions.

    An operator's `excluded` always excludes; `restored` lifts an out-of-range exclusion but not a
    structural one. Automatic entries of earlier runs are re-evaluated: the schema may have changed.
    """
    decisions = decisions or {}
    names = schema.feature_names
    listed = list(rows)
    usable: list[dict[str, Any]] = []
    excluded: list[Exclusion] = []
    restored = 0
    for row, problems in zip(listed, row_problems(listed, schema, labels), strict=True):
        prediction_id = str(row["id"])
        decision = decisions.get(prediction_id)
        if decision is not None and decision.by_operator and decision.status == EXCLUDED:
            reason = f"excluded by {decision.decided_by}: {decision.reason}"
            excluded.append(Exclusion(prediction_id, OPERATOR, reason))
            continue
        if decision is not None and decision.by_operator and decision.status == RESTORED and problems:
            structural = [p for p in problems if p[0] in STRUCTURAL]
            if structural:
                kind, text = structural[0]
                reason = f"restored by {decision.decided_by}, but {text}"
                excluded.append(Exclusion(prediction_id, kind, reason))
                continue
            restored += 1
            problems = []
        if problems:
            excluded.append(Exclusion(prediction_id, problems[0][0], "; ".join(t for _, t in problems)))
            continue
        record = {name: row["features"][name] for name in names}
        record.update({key: row[key] for key in META_COLUMNS})
        usable.append(record)
    frame = pd.DataFrame.from_records(usable, columns=[*names, *META_COLUMNS])
    return FeedbackCheck(frame, excluded, restored)


# --------------------------------------------------------------------------- the store


def labelled_rows(store: PredictionStore, limit: int | None = None) -> list[dict[str, Any]]:
    """Every labelled prediction, newest label first, with its features parsed but not yet checked.

    Read here rather than with `PredictionStore.labelled`, which spreads features into columns: a
    row's own keys are what the schema check needs.
    """
    query = (
        sa.select(
            predictions.c.id,
            predictions.c.ts,
            predictions.c.model_version,
            predictions.c.features,
            predictions.c.prediction,
            feedback.c.true_label,
            feedback.c.ts.label("feedback_ts"),
        )
        .join(feedback, feedback.c.prediction_id == predictions.c.id)
        .order_by(feedback.c.ts.desc(), predictions.c.id)
    )
    if limit is not None:
        query = query.limit(limit)
    with store.engine.connect() as conn:
        found = conn.execute(query).mappings().all()
    rows = []
    for row in found:
        try:
            features: Any = json.loads(row["features"])
        except (TypeError, ValueError):
            features = None
        rows.append({**dict(row), "features": features})
    return rows


def decisions(store: PredictionStore) -> dict[str, Decision]:
    """The quarantine table, by prediction id."""
    with store.engine.connect() as conn:
        found = conn.execute(sa.select(feedback_quarantine)).mappings().all()
    return {row["prediction_id"]: Decision(**dict(row)) for row in found}


def _audit(conn: sa.Connection, prediction_id: str, action: str, actor: str, reason: str, at: float) -> None:
    conn.execute(
        feedback_audit.insert(),
        {"at": at, "prediction_id": prediction_id, "action": action, "actor": actor, "reason": reason},
    )


def record_check(store: PredictionStore, check: FeedbackCheck, pipeline_id: str) -> tuple[int, int]:
    """Write the pipeline's verdicts into the quarantine table (one audit entry per change).

    New exclusions are added; automatic entries whose rows now pass are released (deleted). Operator
    decisions are never touched. Returns (newly quarantined, released).
    """
    now = time.time()
    excluded = {e.prediction_id: e for e in check.excluded if e.kind != OPERATOR}
    usable_ids = {str(i) for i in check.usable["id"]} if not check.usable.empty else set()
    added = released = 0
    with store.engine.begin() as conn:
        current = {
            row["prediction_id"]: row for row in conn.execute(sa.select(feedback_quarantine)).mappings().all()
        }
        for prediction_id, item in excluded.items():
            entry = current.get(prediction_id)
            if entry is not None and entry["decided_by"] != PIPELINE_ACTOR:
                continue  # an operator's decision stands
            if entry is not None:
                if entry["reason"] != item.reason:
                    conn.execute(
                        feedback_quarantine.update()
                        .where(feedback_quarantine.c.prediction_id == prediction_id)
                        .values(kind=item.kind, reason=item.reason, decided_at=now)
                    )
                continue
            conn.execute(
                feedback_quarantine.insert(),
                {
                    "prediction_id": prediction_id,
                    "status": EXCLUDED,
                    "kind": item.kind,
                    "reason": item.reason,
                    "detected_at": now,
                    "decided_by": PIPELINE_ACTOR,
                    "decided_at": now,
                },
            )
            _audit(
                conn,
                prediction_id,
                "quarantined",
                PIPELINE_ACTOR,
                f"pipeline {pipeline_id}: {item.reason}",
                now,
            )
            added += 1
        for prediction_id, entry in current.items():
            if entry["decided_by"] == PIPELINE_ACTOR and prediction_id in usable_ids:
                conn.execute(
                    feedback_quarantine.delete().where(feedback_quarantine.c.prediction_id == prediction_id)
                )
                _audit(
                    conn,
                    prediction_id,
                    "released",
                    PIPELINE_ACTOR,
                    f"pipeline {pipeline_id}: passes validation now",
                    now,
                )
                released += 1
    return added, released


class QuarantineError(ValueError):
    """An operator action cannot be done (unknown or unlabelled prediction, nothing to restore)."""


def decide(store: PredictionStore, prediction_id: str, status: Status, actor: str, reason: str) -> Decision:
    """Record an operator's decision on one labelled prediction, with an audit entry.

    `exclude` works on any labelled prediction (a wrong but plausible label passes every check);
    `restore` on one that is in the quarantine table.
    """
    now = time.time()
    with store.engine.begin() as conn:
        labelled = conn.execute(
            sa.select(feedback.c.prediction_id).where(feedback.c.prediction_id == prediction_id)
        ).first()
        if labelled is None:
            raise QuarantineError(f"no labelled prediction {prediction_id!r} in the prediction store")
        entry = (
            conn.execute(
                sa.select(feedback_quarantine).where(feedback_quarantine.c.prediction_id == prediction_id)
            )
            .mappings()
            .first()
        )
        if status == RESTORED and entry is None:
            raise QuarantineError(f"{prediction_id} is not quarantined; nothing to restore")
        if entry is not None and entry["status"] == status and entry["decided_by"] != PIPELINE_ACTOR:
            raise QuarantineError(f"{prediction_id} is {status} already (by {entry['decided_by']})")
        values = {
            "status": status,
            "kind": OPERATOR if status == EXCLUDED else (entry["kind"] if entry else OPERATOR),
            "reason": reason,
            "decided_by": actor,
            "decided_at": now,
        }
        if entry is None:
            conn.execute(
                feedback_quarantine.insert(), {"prediction_id": prediction_id, "detected_at": now, **values}
            )
        else:
            conn.execute(
                feedback_quarantine.update()
                .where(feedback_quarantine.c.prediction_id == prediction_id)
                .values(**values)
            )
        _audit(conn, prediction_id, "excluded" if status == EXCLUDED else "restored", actor, reason, now)
    return decisions(store)[prediction_id]


def audit_entries(store: PredictionStore, prediction_id: str | None = None) -> list[dict[str, Any]]:
    """The audit trail, oldest first (of one prediction, or all)."""
    query = sa.select(feedback_audit).order_by(feedback_audit.c.seq)
    if prediction_id is not None:
        query = query.where(feedback_audit.c.prediction_id == prediction_id)
    with store.engine.connect() as conn:
        return [dict(row) for row in conn.execute(query).mappings().all()]


def quarantined_count(store: PredictionStore) -> int:
    """Rows the quarantine table currently excludes."""
    query = (
        sa.select(sa.func.count())
        .select_from(feedback_quarantine)
        .where(feedback_quarantine.c.status == EXCLUDED)
    )
    with store.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())
