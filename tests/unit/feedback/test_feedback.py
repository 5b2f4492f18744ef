"""mlstack.feedback: base data plus the usable labelled predictions from a real SQLite prediction store.

The champion's creation time (what "new" feedback is measured against) comes from a file-backed
MLflow registry; nothing is stubbed. Its versions carry no model files, so these tests hold feedback to
the base data's ranges (`schema=None`); the quarantine rules themselves are tests/unit/quarantine's.
"""

from __future__ import annotations

import time
import uuid

import pandas as pd
import pytest

from mlstack import registry
from mlstack.config import Config
from mlstack.data import Dataset, load_base_dataset
from mlstack.feedback import check_feedback, store_exists, with_feedback
from mlstack.quarantine import META_COLUMNS
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
