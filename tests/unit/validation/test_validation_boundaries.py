"""validate-data at its boundaries: the plausible-range band, class counts, and the exact reports.

The range band is [min - slack, max + slack] with slack = one training range (RANGE_SLACK), at least
1e-9 for a constant feature: its edges pass, the next float beyond them does not. A class needs
MIN_ROWS_PER_CLASS rows and a dataset two classes.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlstack.config import ColumnOverride, DataConfig
from mlstack.data import Dataset
from mlstack.data_validation import (
    MIN_ROWS_PER_CLASS,
    RANGE_SLACK,
    DataValidationError,
    ValidationReport,
    check_column,
    ensure_valid,
    row_reasons,
    validate_dataset,
)
from mlstack.schema import ClassSpec, FeatureSchema, FeatureSpec

# alcohol trained on [10, 14]: plausible band [6, 18]. hue constant at 5.0: band 5.0 ± 1e-9.
SCHEMA = FeatureSchema(
    features=(FeatureSpec("alcohol", 10.0, 14.0, 12.0), FeatureSpec("hue", 5.0, 5.0, 5.0)),
    classes=(ClassSpec(0, "a"), ClassSpec(1, "b")),
)


def dataset(alcohol: list[Any], hue: list[Any] | None = None, target: list[Any] | None = None) -> Dataset:
    rows = len(alcohol)
    labels = target if target is not None else [i % 2 for i in range(rows)]
    features = pd.DataFrame({"alcohol": alcohol, "hue": hue if hue is not None else [5.0] * rows})
    return Dataset(features, pd.Series(labels, name="target"), ["a", "b"])


def clean(extra: list[float]) -> list[float]:
    """`extra` values followed by enough in-range rows for two classes of MIN_ROWS_PER_CLASS."""
    return extra + [12.0] * (2 * MIN_ROWS_PER_CLASS)


def range_errors(report: ValidationReport) -> list[str]:
    return [e for e in report.errors if "outside the plausible range" in e]


def test_the_slack_is_one_training_range() -> None:
    assert RANGE_SLACK == 1.0 and MIN_ROWS_PER_CLASS == 5


@pytest.mark.parametrize("value", [6.0, 18.0, 10.0, 14.0, 12.0])
def test_values_on_the_band_edges_pass(value: float) -> None:
    report = validate_dataset(dataset(clean([value])), SCHEMA)
    assert report.ok, report.errors


@pytest.mark.parametrize("value", [math.nextafter(6.0, -math.inf), math.nextafter(18.0, math.inf), -1e9, 1e9])
def test_values_just_beyond_the_band_are_reported(value: float) -> None:
    report = validate_dataset(dataset(clean([value, value])), SCHEMA)
    assert range_errors(report) == ["column 'alcohol': 2 rows outside the plausible range [6, 18]"]


def test_a_constant_feature_gets_a_tiny_band_not_a_unit_one() -> None:
    hue = [5.0] * (2 * MIN_ROWS_PER_CLASS)
    edge = validate_dataset(dataset(clean([12.0]), hue=[5.0 + 1e-9, *hue]), SCHEMA)
    assert edge.ok, edge.errors
    off = validate_dataset(dataset(clean([12.0]), hue=[5.5, *hue]), SCHEMA)
    assert range_errors(off) == ["column 'hue': 1 rows outside the plausible range [5, 5]"]


def test_without_a_schema_there_is_no_range_check() -> None:
    assert validate_dataset(dataset(clean([1e9]))).ok


def test_columns_compared_with_the_champion() -> None:
    data = dataset(clean([12.0]))
    data.features = data.features.rename(columns={"hue": "colour"})
    report = validate_dataset(data, SCHEMA)
    assert report.errors == [
        "columns missing compared with the champion's schema: ['hue']",
        "columns not in the champion's schema: ['colour']",
    ]
    assert report.columns == ["alcohol", "colour"] and report.rows == 11


def test_an_empty_dataset_says_so_and_nothing_else() -> None:
    report = validate_dataset(dataset([]), SCHEMA)
    assert report.errors == ["dataset has no rows"] and report.rows == 0 and not report.ok


def test_a_single_row_is_checked_like_any_dataset() -> None:
    report = validate_dataset(dataset([12.0]), SCHEMA)
    assert report.rows == 1 and report.columns == ["alcohol", "hue"]
    assert report.errors == [
        "column 'target': needs at least 2 classes, found 1",
        "column 'target': class 0 has 1 rows (< 5)",
    ]


def test_class_counts_at_their_boundaries() -> None:
    five_each = [0] * 5 + [1] * 5
    assert validate_dataset(dataset([12.0] * 10, target=five_each), SCHEMA).ok
    four = validate_dataset(dataset([12.0] * 9, target=[0] * 4 + [1] * 5), SCHEMA)
    assert four.errors == ["column 'target': class 0 has 4 rows (< 5)"]
    one_class = validate_dataset(dataset([12.0] * 6, target=[1] * 6), SCHEMA)
    assert one_class.errors == ["column 'target': needs at least 2 classes, found 1"]
    three = validate_dataset(dataset([12.0] * 15, target=[0] * 5 + [1] * 5 + [2] * 5), SCHEMA)
    assert three.ok, three.errors


def test_missing_targets_are_counted() -> None:
    target = [0] * 5 + [1] * 5 + [None, None]
    report = validate_dataset(dataset([12.0] * 12, target=target), SCHEMA)
    assert report.errors == ["column 'target': 2 rows have no target value"]


MISSING_FOR_CHAMPION = (
    "column 'alcohol': {n} rows have missing values where none are allowed (the champion's schema); "
    "declare data.columns.alcohol.nullable: true if they may be missing"
)


def test_missing_and_infinite_values_are_counted() -> None:
    alcohol = clean([np.nan, np.nan, np.inf])
    # The data's own schema infers the column nullable; only the infinite value is an error.
    assert validate_dataset(dataset(alcohol)).errors == ["column 'alcohol': 1 rows have infinite values"]
    # The champion's allows no missing values.
    assert validate_dataset(dataset(alcohol), SCHEMA).errors == [
        "column 'alcohol': 1 rows have infinite values",
        MISSING_FOR_CHAMPION.format(n=2),
    ]


def test_a_nullable_integer_column_with_gaps_is_checked() -> None:
    data = dataset(clean([12.0]))
    data.features["alcohol"] = pd.array([12, None] + [12] * 9, dtype="Int64")
    assert validate_dataset(data, SCHEMA).errors == [MISSING_FOR_CHAMPION.format(n=1)]


def test_ensure_valid_raises_with_every_problem_listed() -> None:
    data = dataset([12.0] * 6, target=[1] * 6)
    data.features.loc[0, "alcohol"] = np.nan
    with pytest.raises(DataValidationError) as caught:
        ensure_valid(data, SCHEMA)
    assert str(caught.value) == (
        "data validation failed:\n"
        f"  - {MISSING_FOR_CHAMPION.format(n=1)}\n"
        "  - column 'target': needs at least 2 classes, found 1"
    )
    assert caught.value.report.errors == [
        MISSING_FOR_CHAMPION.format(n=1),
        "column 'target': needs at least 2 classes, found 1",
    ]
    assert ensure_valid(dataset(clean([12.0])), SCHEMA).ok


# -- categories, ids and the row-level view (the feedback quarantine's) ----------------------------


def categorical(values: list[Any], ids: list[Any] | None = None) -> Dataset:
    rows = len(values)
    features = pd.DataFrame({"alcohol": [12.0] * rows, "plan": values})
    target = pd.Series([i % 2 for i in range(rows)], name="target")
    return Dataset(
        features, target, ["a", "b"], ids=None if ids is None else pd.Series(ids, name="customer_id")
    )


def test_many_categories_for_few_rows_look_like_an_id_or_free_text() -> None:
    distinct = [f"c{i}" for i in range(51)]
    assert validate_dataset(categorical(distinct + distinct[:50])).warnings == [
        "column 'plan': 51 categories in 101 rows looks like an id or free text; "
        "set data.id_column or add it to data.drop_columns"
    ]
    assert validate_dataset(categorical(distinct + distinct)).warnings == []  # 51 in 102: not more than half
    assert validate_dataset(categorical(distinct[:50] * 2)).warnings == []  # 50: not more than the minimum
    assert validate_dataset(categorical([f"c{i}" for i in range(10)])).warnings == []  # few categories


def test_ids_without_a_value_or_repeated_are_warnings() -> None:
    data = categorical(["a", "b"] * 5, ids=["x1", None, "x3", "x3", "", "x6", "x7", "x8", "x9", "x9"])
    assert validate_dataset(data).warnings == [
        "id column 'customer_id': 2 rows have no id",
        "id column 'customer_id': 2 rows repeat an earlier id",
    ]
    assert validate_dataset(categorical(["a", "b"] * 5, ids=[f"x{i}" for i in range(10)])).warnings == []


def test_unknown_categories_are_quoted_three_at_most() -> None:
    champion = FeatureSchema(
        features=(
            FeatureSpec("alcohol", 10.0, 14.0, 12.0),
            FeatureSpec("plan", kind="categorical", categories=("a",)),
        ),
        classes=SCHEMA.classes,
    )
    three = validate_dataset(categorical(["a"] * 7 + ["b", "c", "d"]), champion)
    assert three.warnings == [
        "column 'plan': 3 rows have unknown categories 'b', 'c', 'd'; known: ['a'] (the champion's schema)"
    ]
    four = validate_dataset(categorical(["a"] * 6 + ["b", "c", "d", "e"]), champion)
    assert four.warnings == [
        "column 'plan': 4 rows have unknown categories 'b', 'c', 'd', ...; "
        "known: ['a'] (the champion's schema)"
    ]


def test_categories_the_champion_has_not_seen_are_a_warning_even_when_its_vocabulary_was_closed() -> None:
    closed = FeatureSchema(
        features=(
            FeatureSpec("alcohol", 10.0, 14.0, 12.0),
            FeatureSpec("plan", kind="categorical", categories=("a", "b"), unknown="error"),
        ),
        classes=SCHEMA.classes,
    )
    report = validate_dataset(categorical(["a", "b"] * 5 + ["z"]), closed)
    assert report.ok, report.errors
    assert report.warnings == [
        "column 'plan': 1 rows have unknown categories 'z'; known: ['a', 'b'] (the champion's schema)"
    ]


def test_a_declared_schema_problem_names_no_schema_in_its_message() -> None:
    data = dataset(clean([12.0]))
    data.features["alcohol"] = [np.nan] + [12.0] * 10
    report = validate_dataset(data, data=DataConfig(columns={"alcohol": ColumnOverride(nullable=False)}))
    assert report.errors == [
        "column 'alcohol': 1 rows have missing values where none are allowed; "
        "declare data.columns.alcohol.nullable: true if they may be missing"
    ]


def test_row_reasons_keep_the_frames_index_and_honour_no_range_check() -> None:
    frame = pd.DataFrame({"alcohol": [12.0, 99.0, np.nan], "hue": [5.0, 5.0, 5.0]}, index=[7, 8, 9])
    reasons = row_reasons(frame, SCHEMA)
    assert list(reasons.index) == [7, 8, 9] and reasons.dtype == object
    assert reasons.tolist() == ["", "alcohol: out of range (99.0)", "alcohol: missing value"]
    unchecked = row_reasons(frame, SCHEMA, range_slack=None)
    assert unchecked.tolist() == ["", "", "alcohol: missing value"]


def test_check_column_alone_names_no_schema() -> None:
    issues = check_column(
        pd.Series([1.0, None, np.inf, 99.0]), FeatureSpec("age", 0.0, 10.0, 5.0), range_slack=1.0
    )
    assert [(i.kind, i.rows.tolist(), i.error) for i in issues] == [
        ("missing", [1], True),
        ("infinite", [2], True),
        ("out_of_range", [3], True),
    ]
    assert issues[0].message == (
        "column 'age': 1 rows have missing values where none are allowed; "
        "declare data.columns.age.nullable: true if they may be missing"
    )
    assert (
        issues[2].message == "column 'age': 1 rows outside the plausible range [-10, 20]"
        and issues[2].count == 1
    )
