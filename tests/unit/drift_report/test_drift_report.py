"""mlstack.drift_report: the latest prediction window against the champion's logged reference.

A champion trained by the real train stage into a file-backed MLflow (once for the module), a real
SQLite prediction store per test and real Evidently; nothing is stubbed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from mlstack import contract, registry, train
from mlstack.config import Config
from mlstack.data import Dataset, load_base_dataset, split
from mlstack.drift_report import champion_reference, write_drift_report
from mlstack.store import PredictionStore
from tests.support.exporter import write_predictions
from tests.support.mlflow_store import FileStore, file_store


@dataclass
class Champion:
    store: FileStore
    dataset: Dataset
    version: str


@pytest.fixture(scope="module")
def champion(_mlflow_store_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Champion]:
    root = tmp_path_factory.mktemp("drift-report")
    store = file_store(_mlflow_store_template, root / "mlflow")
    previous = mlflow.get_tracking_uri()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)  # whatever MLflow defaults to (./mlruns) lands here
        config = store.config()
        dataset = load_base_dataset(config.data)
        best = train.train_all(
            config, dataset, split(dataset, config), {contract.TAG_TRIGGER: "manual"}
        ).results[0]
        name = config.project.registered_model
        version = str(mlflow.register_model(best.model_uri, name).version)
        registry.move_alias(
            registry.make_client(config), name, config.project.champion_alias, version, "test"
        )
        try:
            yield Champion(store, dataset, version)
        finally:
            mlflow.set_tracking_uri(previous)


def config_for(champion: Champion, tmp_path: Path) -> Config:
    """The champion's registry with this test's own state dir (and so its own prediction store)."""
    return champion.store.config(**{"services.state_dir": str(tmp_path / "state")})


def log_traffic(config: Config, features: pd.DataFrame, version: str) -> None:
    store = PredictionStore(config.prediction_store_url)
    try:
        store.create_schema()
        write_predictions(store, features, version, model_name=config.project.registered_model)
    finally:
        store.dispose()


def test_without_a_champion_a_note_says_so(mlflow_store: FileStore, tmp_path: Path) -> None:
    config = mlflow_store.config()
    path = tmp_path / "reports" / "drift.html"
    assert champion_reference(config) is None
    assert write_drift_report(config, path) == "skipped: no champion"
    assert "No champion yet: nothing to compare against." in path.read_text()


def test_the_reference_is_the_champions_logged_sample(champion: Champion, tmp_path: Path) -> None:
    config = config_for(champion, tmp_path)
    found = champion_reference(config)
    assert found is not None
    version, reference, features = found
    assert str(version) == champion.version
    assert features == list(map(str, champion.dataset.features.columns))
    assert list(reference.columns) == [*features, "prediction"]
    training_rows = len(split(champion.dataset, config).x_train)
    assert len(reference) == min(config.data.reference_sample_rows, training_rows)


def test_too_few_predictions_write_a_note_naming_the_setting(champion: Champion, tmp_path: Path) -> None:
    config = config_for(champion, tmp_path)
    path = tmp_path / "drift.html"
    needed = config.exporter.drift_min_rows
    assert write_drift_report(config, path) == f"insufficient data (0 rows); note written to {path}"
    assert f"Insufficient data: 0 logged predictions, {needed} needed (exporter.drift_min_rows)." in (
        path.read_text()
    )
    log_traffic(config, champion.dataset.features.head(needed - 1), champion.version)
    assert (
        write_drift_report(config, path) == f"insufficient data ({needed - 1} rows); note written to {path}"
    )


def test_traffic_like_the_training_data_is_no_drift(champion: Champion, tmp_path: Path) -> None:
    config = config_for(champion, tmp_path)
    path = tmp_path / "drift.html"
    rows = champion.dataset.features.sample(n=150, random_state=3)
    log_traffic(config, rows, champion.version)
    summary = write_drift_report(config, path)
    columns = len(champion.dataset.features.columns)
    assert summary == (
        f"no drift: 0/{columns} features drifted (150 rows vs v{champion.version} reference); report {path}"
    )
    report = path.read_text()
    assert report.lstrip().startswith("<!DOCTYPE html>")
    assert all(name in report for name in champion.dataset.features.columns)  # a section per feature


def test_shifted_traffic_is_drift_and_counts_the_features(champion: Champion, tmp_path: Path) -> None:
    config = config_for(champion, tmp_path)
    path = tmp_path / "drift.html"
    rows = champion.dataset.features.sample(n=150, random_state=4)
    shifted = ["alcohol", "proline", "color_intensity", "flavanoids", "hue", "magnesium", "ash"]
    spread = champion.dataset.features[shifted].std()
    log_traffic(config, rows.assign(**{c: rows[c] + 4 * spread[c] for c in shifted}), champion.version)
    summary = write_drift_report(config, path)
    columns = len(champion.dataset.features.columns)
    assert summary.startswith("DRIFT: ") and summary.endswith(
        f"/{columns} features drifted (150 rows vs v{champion.version} reference); report {path}"
    )
    drifted = int(summary.removeprefix("DRIFT: ").split("/", 1)[0])
    assert len(shifted) <= drifted <= columns
