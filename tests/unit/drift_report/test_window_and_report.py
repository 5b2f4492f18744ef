"""The one drift-report implementation (pipeline stage and exporter): window reading and the report."""

from __future__ import annotations

import uuid
from pathlib import Path

import pandas as pd
import pytest

from mlstack.config import Config, DataConfig, load_config
from mlstack.data import load_base_dataset
from mlstack.drift import PREDICTION_COLUMN
from mlstack.drift_report import read_window, write_report
from mlstack.store import PredictionRecord, PredictionStore


@pytest.fixture(scope="module")
def wine() -> pd.DataFrame:
    dataset = load_base_dataset(DataConfig())
    return dataset.features.assign(**{PREDICTION_COLUMN: dataset.target.to_numpy()})


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return load_config(
        overrides={"services.state_dir": str(tmp_path / "state"), "exporter.drift_min_rows": 50}
    )


def _store(tmp_path: Path, frame: pd.DataFrame) -> PredictionStore:
    store = PredictionStore(f"sqlite:///{tmp_path / 'predictions.db'}")
    store.create_schema()
    features = [c for c in frame.columns if c != PREDICTION_COLUMN]
    store.insert_predictions(
        [
            PredictionRecord(
                uuid.uuid4().hex,
                float(i),
                "m",
                "3",
                {f: float(row[f]) for f in features},
                int(row[PREDICTION_COLUMN]),
                [1.0],
            )
            for i, (_, row) in enumerate(frame.iterrows())
        ]
    )
    return store


def test_the_window_counts_all_rows_and_samples_at_most_the_bound(tmp_path: Path, wine: pd.DataFrame) -> None:
    store = _store(tmp_path, wine)
    try:
        window = read_window(store, size=150, sample=40)
        assert window.rows == 150 and len(window.frame) == 40
        assert set(window.frame.columns) == {*wine.columns, "model_version"}
        assert read_window(store, size=150, sample=40).frame.equals(window.frame)  # a stable sample
        assert read_window(store, size=1000).rows == len(wine)
    finally:
        store.dispose()


def test_no_champion_writes_a_note_instead_of_a_stale_report(tmp_path: Path, config: Config) -> None:
    path = tmp_path / "drift.html"
    path.write_text("an old report")
    report = write_report(config, path, None, None, None)
    assert (report.status, report.rows, report.version, report.result) == ("no_champion", 0, None, None)
    assert "No champion yet: nothing to compare against." in path.read_text()
    assert report.summary() == "skipped: no champion"


def test_too_few_rows_says_how_many_are_needed(tmp_path: Path, config: Config, wine: pd.DataFrame) -> None:
    store = _store(tmp_path, wine.head(20))
    path = tmp_path / "drift.html"
    try:
        report = write_report(config, path, "3", wine, read_window(store, 1000))
    finally:
        store.dispose()
    assert (report.status, report.rows, report.min_rows, report.result) == ("insufficient_data", 20, 50, None)
    page = path.read_text()
    assert "Insufficient data: 20 logged predictions, 50 needed (exporter.drift_min_rows)." in page
    assert "Reference: model version 3." in page
    assert report.summary() == f"insufficient data (20 rows); note written to {path}"


def test_a_full_window_is_compared_feature_by_feature(
    tmp_path: Path, config: Config, wine: pd.DataFrame
) -> None:
    shifted = wine.assign(alcohol=wine["alcohol"] + 5 * wine["alcohol"].std())
    store = _store(tmp_path, shifted)
    path = tmp_path / "drift.html"
    try:
        report = write_report(config, path, "3", wine, read_window(store, 1000))
    finally:
        store.dispose()
    assert report.status == "ok" and report.result is not None and report.rows == len(wine)
    assert set(report.result.features) == set(wine.columns) - {PREDICTION_COLUMN}
    assert report.result.features["alcohol"].drifted
    assert (
        path.read_text().lstrip().lower().startswith("<!doctype html") or "<html" in path.read_text()[:2000]
    )
    assert report.summary().startswith(("DRIFT: ", "no drift: ")) and "vs v3 reference" in report.summary()
