"""mlstack.feedback: base data plus the usable labelled predictions from a real SQLite prediction store.

The champion's creation time (what "new" feedback is measured against) comes from a file-backed
MLflow registry; nothing is stubbed. Its versions carry no model files, so these tests hold feedback to
the base data's ranges (`schema=None`); the quarantine rules themselves are tests/unit/quarantine's.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from dataclasses import replace

import pandas as pd
import pytest

from mlstack import registry
from mlstack.config import ColumnOverride, Config
from mlstack.data import Dataset, load_base_dataset
from mlstack.feature_types import infer_schema
from mlstack.feedback import check_feedback, store_exists, with_feedback
from mlstack.quarantine import EXCLUDED, META_COLUMNS, audit_entries, decide, decisions
from mlstack.schema import FeatureSchema
from mlstack.store import PredictionRecord, PredictionStore
from tests.support.mlflow_store import FileStore


@pytest.fixture
def config(mlflow_store: FileStore) -> Config:
    return mlflow_store.config()


@pytest.fixture
def wine(config: Config) -> Dataset:
    return load_base_dataset(config.data)


def label(config: Config, rows: pd.DataFrame, labels: list[int], at: float) -> list[str]:
    """Log one prediction per row and its feedback label at `at` (+1 ms per row), as the predictor does."""
    store = PredictionStore(config.prediction_store_url)
    try:
        store.create_schema()
        ids = []
        for i, (row, true_label) in enumerate(zip(rows.to_dict(orient="records"), labels, strict=True)):
            record = PredictionRecord(
                uuid.uuid4().hex, at, "wine-classifier", "1", {k: float(v) for k, v in row.items()}, 0, [1.0]
            )
            store.insert_predictions([record])
            assert store.add_feedback(record.id, int(true_label), at + i * 1e-3)
            ids.append(record.id)
        return ids
    finally:
        store.dispose()


def promote_champion(store: FileStore, config: Config) -> float:
    """Register and promote v1 now; its creation time in seconds."""
    name = config.project.registered_model
    (version,) = store.register(name, 1)
    client = registry.make_client(config)
    registry.move_alias(client, name, config.project.champion_alias, version, "first")
    champion = registry.champion_version(client, config)
    assert champion is not None
    return float(champion.creation_timestamp) / 1000.0


def test_store_exists_only_checks_sqlite_files(tmp_path: object) -> None:
    assert not store_exists(f"sqlite:///{tmp_path}/nothing-here.db")
    assert store_exists("postgresql://user@127.0.0.1:1/predictions")  # a server: assumed there


def test_no_store_or_no_labels_is_an_empty_frame_with_the_columns(config: Config, wine: Dataset) -> None:
    names = list(map(str, wine.features.columns))
    empty = check_feedback(config, wine, None).usable
    assert empty.empty and list(empty.columns) == [*names, *META_COLUMNS]
    assert not store_exists(config.prediction_store_url)  # reading did not create it

    store = PredictionStore(config.prediction_store_url)
    store.create_schema()
    store.dispose()
    unlabelled = check_feedback(config, wine, None)
    assert unlabelled.usable.empty and list(unlabelled.usable.columns) == [*names, *META_COLUMNS]
    assert unlabelled.excluded == []


def test_labelled_rows_come_back_in_feature_order(config: Config, wine: Dataset) -> None:
    names = list(map(str, wine.features.columns))
    rows = wine.features.iloc[:3]
    label(config, rows[list(reversed(names))], [2, 1, 0], at=1_000.0)  # stored in another key order
    frame = check_feedback(config, wine, None).usable
    assert list(frame.columns) == [*names, *META_COLUMNS]
    by_time = frame.sort_values("feedback_ts")
    assert by_time["true_label"].tolist() == [2, 1, 0]
    assert by_time[names].to_numpy().tolist() == rows.to_numpy().tolist()


def test_a_changed_feature_set_is_quarantined_not_fatal(config: Config, wine: Dataset) -> None:
    label(config, wine.features.iloc[:2].drop(columns=["proline"]), [0, 1], at=1_000.0)
    label(config, wine.features.iloc[2:3] * 1.01, [0], at=1_001.0)
    check = check_feedback(config, wine, None)
    assert check.used == 1
    reason = "features missing ['proline']; proline: missing value"
    assert [(e.kind, e.reason) for e in check.excluded] == [("schema", reason)] * 2
    merged = with_feedback(wine, config, None)
    assert merged.composition["feedback_rows"] == 1 and merged.composition["feedback_excluded"] == 2


def test_without_feedback_the_base_data_is_unchanged(config: Config, wine: Dataset) -> None:
    merged = with_feedback(wine, config, None)
    assert merged.composition == {
        "base_rows": len(wine.features),
        "feedback_rows": 0,
        "feedback_excluded": 0,
        "feedback_duplicates": 0,
        "new_rows": 0,
    }
    assert merged.features.equals(wine.features) and merged.target.equals(wine.target)


def test_feedback_is_appended_deduplicated_and_counted(config: Config, wine: Dataset) -> None:
    base = len(wine.features)
    shifted = wine.features.iloc[:4] * 1.01  # rows the base data does not have (within its ranges)
    label(config, shifted, [0, 1, 2, 0], at=1_000.0)
    label(config, shifted.iloc[:2], [0, 1], at=2_000.0)  # the same rows labelled the same again
    label(config, wine.features.iloc[:1], [int(wine.target.iloc[0])], at=3_000.0)  # a copy of a base row
    merged = with_feedback(wine, config, None)

    assert len(merged.features) == base + 4
    assert merged.composition["base_rows"] == base and merged.composition["feedback_rows"] == 4
    # 7 usable labels: 2 repeat rows already labelled the same, 1 copies a base row; all accounted for.
    assert merged.composition["feedback_duplicates"] == 3
    # No champion yet: every labelled row counts as new (capped at the rows actually added).
    assert merged.composition["new_rows"] == 4
    # The span of the labels kept: of a row labelled twice the newest label is kept (1000.000 and
    # 1000.001 were relabelled at 2000), and the copy of a base row still counts as feedback seen.
    assert merged.composition["feedback_from"] == pytest.approx(1_000.002)
    assert merged.composition["feedback_to"] == pytest.approx(3_000.0)
    assert merged.target.dtype.kind == "i"
    appended = zip(merged.features.iloc[base:].to_numpy().tolist(), merged.target.iloc[base:], strict=True)
    expected = zip(shifted.to_numpy().tolist(), [0, 1, 2, 0], strict=True)
    assert sorted((tuple(f), int(t)) for f, t in appended) == sorted((tuple(f), t) for f, t in expected)
    assert merged.features.iloc[:base].equals(wine.features)  # the base rows first, untouched
    assert list(merged.features.columns) == list(wine.features.columns)
    assert merged.class_names == wine.class_names and merged.target_name == wine.target_name


def test_a_relabelled_row_is_kept_with_each_label(config: Config, wine: Dataset) -> None:
    row = wine.features.iloc[:1] * 1.02
    label(config, row, [0], at=1_000.0)
    label(config, row, [2], at=2_000.0)  # the labelling team changed its mind: both are data
    merged = with_feedback(wine, config, None)
    assert merged.composition["feedback_rows"] == 2
    assert sorted(merged.target.iloc[len(wine.features) :].tolist()) == [0, 2]


def test_only_feedback_after_the_champion_was_trained_is_new(
    mlflow_store: FileStore, config: Config, wine: Dataset
) -> None:
    old = wine.features.iloc[:3] * 1.01
    label(config, old, [0, 1, 2], at=time.time() - 3_600)
    trained_at = promote_champion(mlflow_store, config)
    new = wine.features.iloc[3:5] * 1.01
    label(config, new, [1, 1], at=trained_at + 60)
    absurd = wine.features.iloc[5:6] * 1e6  # new, but quarantined: it does not count as new data
    label(config, absurd, [1], at=trained_at + 61)
    merged = with_feedback(wine, config, None)
    assert merged.composition["feedback_rows"] == 5
    assert merged.composition["new_rows"] == 2
    assert merged.composition["feedback_excluded"] == 1


# -- whose ranges feedback is held to, what is recorded, what the stage line says --------------------


def narrowed(wine: Dataset, feature: str, maximum: float) -> FeatureSchema:
    """The base data's schema with one feature's training range ending at `maximum` (a champion's)."""
    base = infer_schema(wine.features, wine.target, wine.class_names, wine.target_name)
    specs = tuple(replace(f, maximum=maximum) if f.name == feature else f for f in base.features)
    return replace(base, features=specs)


def test_feedback_is_held_to_the_champions_ranges_when_the_features_match(
    config: Config, wine: Dataset
) -> None:
    low = float(wine.features["alcohol"].min())
    row = wine.features.iloc[:1].assign(alcohol=float(wine.features["alcohol"].max()))
    label(config, row * 1.0, [0], at=1_000.0)
    champion = narrowed(wine, "alcohol", low + 0.01)  # the top of the base range is far beyond it
    assert [e.kind for e in check_feedback(config, wine, champion).excluded] == ["out_of_range"]
    assert check_feedback(config, wine, None).used == 1  # the base data's own ranges
    # a champion with other features: the base data's ranges again (validation reports the change)
    other = replace(champion, features=champion.features[1:])
    assert check_feedback(config, wine, other).used == 1


def test_the_configs_column_overrides_apply_to_feedback(mlflow_store: FileStore, wine: Dataset) -> None:
    config = mlflow_store.config()
    nullable = config.model_copy(
        update={
            "data": config.data.model_copy(update={"columns": {"alcohol": ColumnOverride(nullable=True)}})
        }
    )
    store = PredictionStore(config.prediction_store_url)
    try:
        store.create_schema()
        features = {str(k): float(v) for k, v in wine.features.iloc[0].items()} | {"alcohol": math.nan}
        store.insert_predictions(
            [PredictionRecord("p-null", 1_000.0, "wine-classifier", "1", features, 0, [1.0])]
        )
        assert store.add_feedback("p-null", 0, 1_000.0)
    finally:
        store.dispose()
    assert [e.kind for e in check_feedback(config, wine, None).excluded] == ["missing"]
    assert check_feedback(nullable, wine, None).used == 1  # the base data's schema, with the override
    champion = infer_schema(wine.features, wine.target, wine.class_names, wine.target_name)
    assert check_feedback(nullable, wine, champion).used == 1  # the champion's, with the override


def test_validate_data_records_its_verdicts_and_operator_decisions_are_honoured(
    config: Config, wine: Dataset, caplog: pytest.LogCaptureFixture
) -> None:
    usable_id, absurd_id = label(
        config, pd.concat([wine.features.iloc[:1] * 1.01, wine.features.iloc[1:2] * 1e6]), [0, 1], at=1_000.0
    )
    store = PredictionStore(config.prediction_store_url)
    try:
        check_feedback(config, wine, None)  # train and gate only read
        assert decisions(store) == {}
        with caplog.at_level(logging.INFO, logger="mlstack.feedback"):
            check_feedback(config, wine, None, record_as="validate-7")
        assert set(decisions(store)) == {absurd_id}
        assert "feedback quarantine: 1 rows added, 0 released" in caplog.messages
        assert [e["reason"].partition(":")[0] for e in audit_entries(store)] == ["pipeline validate-7"]
        decide(store, usable_id, EXCLUDED, "user:dana", "label from a broken batch")
        check = check_feedback(config, wine, None)
        assert check.used == 0 and {e.prediction_id for e in check.excluded} == {usable_id, absurd_id}
    finally:
        store.dispose()


def test_the_training_data_line_and_the_base_only_dataset(
    config: Config, wine: Dataset, caplog: pytest.LogCaptureFixture
) -> None:
    ided = replace(wine, ids=pd.Series([f"w{i}" for i in range(len(wine.features))], name="id"))
    with caplog.at_level(logging.INFO, logger="mlstack.feedback"):
        merged = with_feedback(ided, config)  # the champion's schema by default; there is none yet
    assert caplog.messages == [f"training data: {len(wine.features)} base rows; feedback 0 used, 0 excluded"]
    assert merged.class_names == wine.class_names and merged.target_name == wine.target_name
    assert merged.ids is not None and merged.ids.equals(ided.ids)
    assert merged.observed_at is not None and merged.observed_at.dtype == "float64"
    assert len(merged.observed_at) == len(wine.features) and merged.observed_at.isna().all()


def test_appended_rows_carry_their_prediction_time_and_a_fresh_index(
    config: Config, wine: Dataset, caplog: pytest.LogCaptureFixture
) -> None:
    base = len(wine.features)
    label(config, wine.features.iloc[1:3] * 1.01, [0, 1], at=1_000.0)
    # a copy of a base row, labelled last: read first (newest label first), dropped from the middle
    label(config, wine.features.iloc[:1], [int(wine.target.iloc[0])], at=2_000.0)
    with caplog.at_level(logging.INFO, logger="mlstack.feedback"):
        merged = with_feedback(wine, config, None)
    assert list(merged.features.index) == list(range(base + 2))
    assert merged.observed_at is not None
    assert (
        merged.observed_at.iloc[:base].isna().all()
        and merged.observed_at.iloc[base:].tolist() == [1_000.0] * 2
    )
    assert caplog.messages == [
        f"training data: {base} base rows + 2 feedback rows (3 new); feedback 3 used, 0 excluded"
    ]


def test_feedback_labelled_at_the_champions_creation_is_not_new(
    mlflow_store: FileStore, config: Config, wine: Dataset
) -> None:
    trained_at = promote_champion(mlflow_store, config)
    label(config, wine.features.iloc[:2] * 1.01, [0, 1], at=trained_at)  # at, and 1 ms after
    assert with_feedback(wine, config, None).composition["new_rows"] == 1


def test_the_champions_schema_is_looked_up_by_default(
    mlflow_store: FileStore, config: Config, wine: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file store's versions carry no model files, so the one reader of a logged model's metadata
    returns what a trained champion's MLmodel holds; the registry, the alias and the store are real."""
    promote_champion(mlflow_store, config)
    champion = narrowed(wine, "alcohol", float(wine.features["alcohol"].min()) + 0.01)
    read: list[str] = []

    def logged_schema(model_uri: str) -> FeatureSchema:
        read.append(model_uri)
        return champion

    monkeypatch.setattr(registry, "logged_schema", logged_schema)
    row = wine.features.iloc[:1].assign(alcohol=float(wine.features["alcohol"].max()))
    label_ids = label(config, row * 1.0, [0], at=1_000.0)
    assert with_feedback(wine, config).composition["feedback_excluded"] == 1
    assert read == [f"models:/{config.project.registered_model}@{config.project.champion_alias}"]
    assert with_feedback(wine, config, None).composition["feedback_excluded"] == 0
    assert decisions_in(config) == {}  # train and gate only read
    with_feedback(wine, config, record_as="validate-8")  # validate-data records
    assert list(decisions_in(config)) == label_ids


def decisions_in(config: Config) -> dict[str, object]:
    store = PredictionStore(config.prediction_store_url)
    try:
        return dict(decisions(store))
    finally:
        store.dispose()
