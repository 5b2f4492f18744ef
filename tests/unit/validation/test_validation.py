"""validate-data: good data passes; each negative fixture fails naming the column and row count."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlstack.config import DataConfig
from mlstack.data import Dataset, load_base_dataset
from mlstack.data_validation import DataValidationError, ensure_valid, validate_dataset
from mlstack.feature_types import infer_schema
from mlstack.schema import FeatureSchema

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def csv_dataset(name: str) -> Dataset:
    return load_base_dataset(DataConfig(source="csv", csv_path=str(FIXTURES / name)))


@pytest.fixture(scope="module")
def wine_schema() -> FeatureSchema:
    wine = load_base_dataset(DataConfig())
    return infer_schema(wine.features, wine.target, wine.class_names, "target")


def test_wine_and_the_good_fixture_pass(wine_schema: FeatureSchema) -> None:
    assert ensure_valid(load_base_dataset(DataConfig()), wine_schema).rows == 178
    assert ensure_valid(csv_dataset("wine_good.csv"), wine_schema).rows == 60


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("wine_missing_values.csv", "column 'alcohol': 3 rows have missing values"),
        ("wine_bad_types.csv", "column 'magnesium': 2 rows are not numeric"),
        ("wine_out_of_range.csv", "column 'proline': 4 rows outside the plausible range"),
        ("wine_missing_column.csv", "columns missing compared with the champion's schema: ['hue']"),
    ],
)
def test_negative_fixtures_name_column_and_rows(
    fixture: str, expected: str, wine_schema: FeatureSchema
) -> None:
    report = validate_dataset(csv_dataset(fixture), wine_schema)
    assert not report.ok
    assert any(expected in error for error in report.errors), report.errors
    with pytest.raises(DataValidationError, match="data validation failed"):
        ensure_valid(csv_dataset(fixture), wine_schema)


def test_missing_target_column_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="target column 'target' not in"):
        csv_dataset("wine_no_target.csv")


def test_missing_csv_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_base_dataset(DataConfig(source="csv", csv_path=str(tmp_path / "nope.csv")))
    with pytest.raises(ValueError, match="csv_path is not set"):
        load_base_dataset(DataConfig(source="csv"))


def test_too_few_rows_per_class() -> None:
    dataset = csv_dataset("wine_good.csv")
    keep = dataset.target != 2
    keep.iloc[dataset.target[dataset.target == 2].index[:2]] = True
    dataset.features, dataset.target = dataset.features[keep], dataset.target[keep]
    report = validate_dataset(dataset)
    assert any("class 2 has 2 rows" in e for e in report.errors), report.errors


def test_infinite_values_are_reported() -> None:
    dataset = csv_dataset("wine_good.csv")
    dataset.features.loc[[0, 1], "hue"] = float("inf")
    report = validate_dataset(dataset)
    assert "column 'hue': 2 rows have infinite values" in report.errors
