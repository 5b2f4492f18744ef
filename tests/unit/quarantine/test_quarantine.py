"""Feedback quarantine: each reason a labelled row is left out, operator decisions and their audit trail."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from mlstack.config import DataConfig
from mlstack.data import load_base_dataset
from mlstack.feature_types import infer_schema
from mlstack.quarantine import (
    EXCLUDED,
    PIPELINE_ACTOR,
    RESTORED,
    Decision,
    QuarantineError,
    audit_entries,
    check_rows,
    decide,
    decisions,
    labelled_rows,
    quarantined_count,
    record_check,
    row_problems,
)
from mlstack.schema import FeatureSchema
from mlstack.store import PredictionRecord, PredictionStore
from tests.support.pipeline import isolated_config

CUSTOMERS = Path(__file__).resolve().parents[2] / "fixtures" / "customers.csv"
CONFIG = isolated_config("http://127.0.0.1:9", Path("/nonexistent"))
DATASET = load_base_dataset(CONFIG.data)
SCHEMA = infer_schema(DATASET.features, DATASET.target, DATASET.class_names, "target")
LABELS = {0, 1, 2}
TYPICAL: dict[str, Any] = {f.name: float(f.typical or 0.0) for f in SCHEMA.features}


def problems(features: object, label: object = 0) -> list[tuple[str, str]]:
    return [
        (kind, text)
        for kind, text in row_problems([{"features": features, "true_label": label}], SCHEMA, LABELS)[0]
    ]


def kinds(features: object, label: object = 0) -> list[str]:
    return [kind for kind, _ in problems(features, label)]


def test_a_typical_row_is_usable() -> None:
    assert problems(TYPICAL, 1) == []


def test_values_within_the_tolerance_band_are_usable_beyond_it_are_not() -> None:
    spec = SCHEMA.features[0]
    assert spec.minimum is not None and spec.maximum is not None
    width = spec.maximum - spec.minimum
    assert kinds({**TYPICAL, spec.name: spec.maximum + 0.9 * width}) == []  # drift, not breakage
    assert problems({**TYPICAL, spec.name: 1e6}) == [
        ("out_of_range", f"{spec.name}: out of range (1000000.0)")
    ]


@pytest.mark.parametrize(
    ("features", "label", "expected"),
    [
        ({**TYPICAL, "alcohol": math.inf}, 0, ["infinite"]),
        ({**TYPICAL, "alcohol": None}, 0, ["missing"]),  # the store writes NaN and infinity as null
        ({**TYPICAL, "alcohol": "13.2x"}, 0, ["not_numeric"]),
        ({k: v for k, v in TYPICAL.items() if k != "alcohol"}, 0, ["schema", "missing"]),
        ({**TYPICAL, "colour": 1.0}, 0, ["schema"]),
        ([1, 2, 3], 0, ["schema", "missing"]),
        (None, 0, ["schema", "missing"]),
        (TYPICAL, 7, ["unknown_label"]),
        (TYPICAL, "1", ["unknown_label"]),
    ],
)
def test_each_reason_a_row_cannot_be_trained_on(features: object, label: object, expected: list[str]) -> None:
    assert kinds(features, label) == expected


def test_several_problems_are_all_reported() -> None:
    found = problems({**TYPICAL, "alcohol": 1e6, "ash": math.inf}, 9)
    assert [k for k, _ in found] == ["out_of_range", "unknown_label"]
    assert found[0][1] == "ash: infinite value; alcohol: out of range (1000000.0)" or "alcohol" in found[0][1]


def rows(*features: Mapping[str, object], label: int = 0) -> list[dict[str, object]]:
    return [
        {
            "id": f"p{i}",
            "ts": 1000.0 + i,
            "model_version": "1",
            "features": f,
            "prediction": 0,
            "true_label": label,
            "feedback_ts": 2000.0 + i,
        }
        for i, f in enumerate(features)
    ]


def test_check_rows_splits_usable_and_excluded_with_reasons() -> None:
    check = check_rows(rows(TYPICAL, {**TYPICAL, "alcohol": 1e6}, TYPICAL), SCHEMA, LABELS)
    assert check.used == 2 and list(check.usable["id"]) == ["p0", "p2"]
    assert [(e.prediction_id, e.kind) for e in check.excluded] == [("p1", "out_of_range")]
    assert check.summary() == "2 used, 1 excluded (out_of_range 1)"
    assert list(check.usable.columns[: len(SCHEMA.feature_names)]) == SCHEMA.feature_names


def store_with_labels(tmp_path: Path, *features: dict[str, Any], label: int = 0) -> PredictionStore:
    store = PredictionStore(f"sqlite:///{tmp_path / 'predictions.db'}")
    store.create_schema()
    now = time.time()
    records = [
        PredictionRecord(f"p{i}", now + i, "wine", "1", f, 0, [1.0, 0.0, 0.0]) for i, f in enumerate(features)
    ]
    store.insert_predictions(records)
    for record in records:
        assert store.add_feedback(record.id, label, now + 10 + int(record.id[1:]))
    return store


def test_the_pipeline_records_its_verdicts_and_releases_rows_that_pass_later(tmp_path: Path) -> None:
    store = store_with_labels(tmp_path, TYPICAL, {**TYPICAL, "alcohol": 1e6}, {**TYPICAL, "proline": 1e9})
    try:
        check = check_rows(labelled_rows(store), SCHEMA, LABELS, decisions(store))
        assert record_check(store, check, "run-1") == (2, 0)
        assert record_check(store, check, "run-2") == (0, 0)  # idempotent
        table = decisions(store)
        assert set(table) == {"p1", "p2"} and all(d.decided_by == PIPELINE_ACTOR for d in table.values())
        assert table["p1"].status == EXCLUDED and table["p1"].reason == "alcohol: out of range (1000000.0)"
        assert quarantined_count(store) == 2
        # A wider schema (a champion trained on data like it) makes p1 usable: it is released.
        wide = FeatureSchema.from_dict(
            {
                **SCHEMA.to_dict(),
                "features": [
                    {**f, "maximum": 2e6} if f["name"] == "alcohol" else f
                    for f in SCHEMA.to_dict()["features"]
                ],
            }
        )
        later = check_rows(labelled_rows(store), wide, LABELS, decisions(store))
        assert record_check(store, later, "run-3") == (0, 1)
        assert set(decisions(store)) == {"p2"}
        actions = [(e["prediction_id"], e["action"], e["actor"]) for e in audit_entries(store)]
        assert sorted(actions[:2]) == [("p1", "quarantined", "pipeline"), ("p2", "quarantined", "pipeline")]
        assert actions[2:] == [("p1", "released", "pipeline")]
    finally:
        store.dispose()


def test_operator_decisions_override_the_check_and_are_audited(tmp_path: Path) -> None:
    store = store_with_labels(
        tmp_path, TYPICAL, {**TYPICAL, "alcohol": 1e6}, {**TYPICAL, "ash": math.inf}, {**TYPICAL, "hue": 2.0}
    )
    try:
        record_check(store, check_rows(labelled_rows(store), SCHEMA, LABELS, decisions(store)), "run-1")
        # restore an out-of-range row: it is trained on; a non-finite one stays out whatever is decided
        decide(store, "p1", RESTORED, "user:alice", "new wine region, value confirmed")
        decide(store, "p2", RESTORED, "user:alice", "trying")
        # exclude a plausible row whose label the labelling team found wrong
        decide(store, "p0", EXCLUDED, "user:bob", "label from the broken batch of 2026-11-30")
        check = check_rows(labelled_rows(store), SCHEMA, LABELS, decisions(store))
        assert sorted(check.usable["id"]) == ["p1", "p3"] and check.restored == 1
        reasons = {e.prediction_id: (e.kind, e.reason) for e in check.excluded}
        assert reasons["p0"] == (
            "operator",
            "excluded by user:bob: label from the broken batch of 2026-11-30",
        )
        assert reasons["p2"][0] == "missing" and reasons["p2"][1].startswith("restored by user:alice, but")
        # the pipeline never overwrites an operator's decision
        record_check(store, check, "run-2")
        table = decisions(store)
        assert (table["p1"].status, table["p1"].decided_by) == (RESTORED, "user:alice")
        assert (table["p0"].status, table["p0"].decided_by) == (EXCLUDED, "user:bob")
        trail = [(e["action"], e["actor"]) for e in audit_entries(store, "p1")]
        assert trail == [("quarantined", "pipeline"), ("restored", "user:alice")]
        with pytest.raises(QuarantineError, match="not quarantined"):
            decide(store, "p3", RESTORED, "user:alice", "x")
        with pytest.raises(QuarantineError, match="no labelled prediction"):
            decide(store, "nope", EXCLUDED, "user:alice", "x")
        with pytest.raises(QuarantineError, match="excluded already"):
            decide(store, "p0", EXCLUDED, "user:bob", "again")
        # and an operator may change their mind: restoring p0 brings it back
        decide(store, "p0", RESTORED, "user:bob", "label re-checked")
        assert "p0" in set(check_rows(labelled_rows(store), SCHEMA, LABELS, decisions(store)).usable["id"])
    finally:
        store.dispose()


# -- the exact verdicts: texts, order, counts (what `mlstack feedback list` and the stage line show) --


def test_a_rows_shape_problem_names_the_missing_and_the_unknown_features() -> None:
    without_alcohol: dict[object, object] = {k: v for k, v in TYPICAL.items() if k != "alcohol"}
    odd_keys = {**without_alcohol, "colour": 1.0, 5: 2.0}  # a non-text key is named as text
    assert problems(odd_keys)[0] == (
        "schema",
        "features missing ['alcohol']; unknown ['colour', '5']",
    )
    assert problems(without_alcohol)[0] == ("schema", "features missing ['alcohol']")
    assert problems({**TYPICAL, "colour": 1.0}) == [("schema", "features unknown ['colour']")]
    assert problems("not a mapping")[0] == ("schema", "logged features are not an object")


@pytest.mark.parametrize("label", [True, 7, "1", None])
def test_a_label_that_is_not_a_class_index_is_named_with_the_known_classes(label: object) -> None:
    # True == 1 in Python: a JSON boolean must not pass as class 1
    assert problems(TYPICAL, label) == [("unknown_label", f"label {label!r} is not a class (0, 1, 2)")]


def operator(prediction_id: str, status: Any, kind: str = "operator") -> Decision:
    return Decision(prediction_id, status, kind, "checked by hand", 1.0, "user:carol", 2.0)


def test_every_row_is_decided_after_an_operator_exclusion_and_each_restore_is_counted() -> None:
    out = {**TYPICAL, "alcohol": 1e6}
    decided = {
        "p0": operator("p0", EXCLUDED),
        "p1": operator("p1", RESTORED, "out_of_range"),
        "p2": operator("p2", RESTORED, "out_of_range"),
    }
    check = check_rows(rows(TYPICAL, out, out, TYPICAL), SCHEMA, LABELS, decided)
    assert list(check.usable["id"]) == ["p1", "p2", "p3"]
    assert check.restored == 2
    assert [(e.prediction_id, e.kind) for e in check.excluded] == [("p0", "operator")]


def test_the_summary_counts_each_kind_in_name_order() -> None:
    out, inf = {**TYPICAL, "alcohol": 1e6}, {**TYPICAL, "ash": math.inf}
    check = check_rows(rows(out, TYPICAL, inf, out), SCHEMA, LABELS)
    assert check.counts_by_kind() == {"out_of_range": 2, "infinite": 1}
    assert check.summary() == "1 used, 3 excluded (infinite 1, out_of_range 2)"
    assert check_rows(rows(TYPICAL, TYPICAL), SCHEMA, LABELS).summary() == "2 used, 0 excluded"


def test_the_pipeline_updates_a_changed_reason_keeps_operator_entries_and_checks_every_row(
    tmp_path: Path,
) -> None:
    store = store_with_labels(
        tmp_path,
        {**TYPICAL, "alcohol": 1e6},  # p0: its problem changes
        {**TYPICAL, "proline": 1e9},  # p1: unchanged
        TYPICAL,  # p2: out of range later
        {**TYPICAL, "ash": math.inf},  # p3: restored by an operator, still refused (structural)
    )
    try:
        assert record_check(store, check_rows(labelled_rows(store), SCHEMA, LABELS), "run-1") == (3, 0)
        decide(store, "p3", RESTORED, "user:alice", "sensor fixed")
        before = decisions(store)
        rows_now = labelled_rows(store)
        # newest label first: the operator's p3 is the first verdict record_check meets
        assert [row["id"] for row in rows_now] == ["p3", "p2", "p1", "p0"]
        for row in rows_now:
            if row["id"] == "p0":
                row["features"] = {**row["features"], "alcohol": math.inf}
            if row["id"] == "p2":
                row["features"] = {**row["features"], "magnesium": 1e9}
        check = check_rows(rows_now, SCHEMA, LABELS, before)
        assert record_check(store, check, "run-2") == (1, 0)
        after = decisions(store)
        assert after["p3"] == before["p3"]  # an operator's entry is never rewritten
        assert (after["p0"].kind, after["p0"].reason) == ("infinite", "alcohol: infinite value")
        assert after["p0"].decided_at > before["p0"].decided_at and after["p0"].decided_by == PIPELINE_ACTOR
        assert after["p1"] == before["p1"]  # unchanged: not touched
        assert after["p2"].decided_by == PIPELINE_ACTOR and after["p2"].kind == "out_of_range"
        reasons = [e["reason"] for e in audit_entries(store, "p2")]
        assert reasons == ["pipeline run-2: magnesium: out of range (1000000000.0)"]
    finally:
        store.dispose()


def test_every_row_that_passes_now_is_released(tmp_path: Path) -> None:
    store = store_with_labels(tmp_path, {**TYPICAL, "alcohol": 1e6}, {**TYPICAL, "proline": 1e9})
    try:
        record_check(store, check_rows(labelled_rows(store), SCHEMA, LABELS), "run-1")
        wide = FeatureSchema.from_dict(
            {
                **SCHEMA.to_dict(),
                "features": [
                    {**f, "maximum": 1e10} if f["name"] in ("alcohol", "proline") else f
                    for f in SCHEMA.to_dict()["features"]
                ],
            }
        )
        assert record_check(store, check_rows(labelled_rows(store), wide, LABELS), "run-2") == (0, 2)
        assert decisions(store) == {}
    finally:
        store.dispose()


def test_an_operator_decision_sets_the_kind_and_is_audited_as_what_it_did(tmp_path: Path) -> None:
    store = store_with_labels(tmp_path, TYPICAL, {**TYPICAL, "alcohol": 1e6})
    try:
        record_check(store, check_rows(labelled_rows(store), SCHEMA, LABELS), "run-1")
        # excluding a row nobody quarantined, restoring a quarantined one, excluding it again
        assert decide(store, "p0", EXCLUDED, "user:bob", "wrong label").kind == "operator"
        assert decide(store, "p1", RESTORED, "user:bob", "confirmed").kind == "out_of_range"
        assert decide(store, "p1", EXCLUDED, "user:bob", "on second thought").kind == "operator"
        assert decide(store, "p0", RESTORED, "user:bob", "label fixed").kind == "operator"
        trail = [(e["prediction_id"], e["action"], e["actor"]) for e in audit_entries(store)]
        assert trail == [
            ("p1", "quarantined", "pipeline"),
            ("p0", "excluded", "user:bob"),
            ("p1", "restored", "user:bob"),
            ("p1", "excluded", "user:bob"),
            ("p0", "restored", "user:bob"),
        ]
    finally:
        store.dispose()


def test_a_mixed_row_logged_with_its_id_and_nulls_is_usable() -> None:
    """The predictor logs a row's id column and nulls for left-out nullable features: trainable as is."""
    config = DataConfig(
        source="csv",
        csv_path=str(CUSTOMERS),
        target="outcome",
        id_column="customer_id",
        drop_columns=["notes"],
    )
    data = load_base_dataset(config)
    schema = infer_schema(data.features, data.target, data.class_names, "outcome", config)
    labels = {c.label for c in schema.classes}
    typical = {f.name: f.typical for f in schema.features}
    nullable = next(f.name for f in schema.features if f.nullable)
    logged = [
        {**typical, "customer_id": "C1"},
        {**typical, "customer_id": None, nullable: None},
        {**typical, "account": "C2"},  # any other extra key is still a schema problem
    ]
    check = check_rows(rows(*logged), schema, labels)
    assert list(check.usable["id"]) == ["p0", "p1"]
    assert [(e.prediction_id, e.kind) for e in check.excluded] == [("p2", "schema")]
    assert "unknown ['account']" in check.excluded[0].reason
