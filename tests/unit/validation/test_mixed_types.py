"""validate-data on mixed-type data: each error names the column and the row count; rows get reasons."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlstack.config import ColumnOverride
from mlstack.data import Dataset, load_base_dataset
from mlstack.data_validation import (
    MISSING,
    NOT_NUMERIC,
    OUT_OF_RANGE,
    UNKNOWN_CATEGORY,
    DataValidationError,
    ensure_valid,
    row_reasons,
    validate_dataset,
)
from mlstack.feature_types import infer_schema
from mlstack.schema import FeatureSchema
from tests.support.customers import customers_data_config


@pytest.fixture
def customers() -> Dataset:
    return load_base_dataset(customers_data_config())


@pytest.fixture(scope="module")
def champion() -> FeatureSchema:
    """The schema a model trained on the fixture would carry."""
    data = customers_data_config()
    dataset = load_base_dataset(data)
    return infer_schema(dataset.features, dataset.target, dataset.class_names, "outcome", data)


def test_the_fixture_passes_alone_and_against_its_own_schema(
    customers: Dataset, champion: FeatureSchema
) -> None:
    assert ensure_valid(customers, None, customers_data_config()).rows == 600
    report = ensure_valid(customers, champion, customers_data_config())
    assert report.warnings == [] and report.issues == []


def test_values_that_do_not_parse_in_a_numeric_column(customers: Dataset) -> None:
    features = customers.features.astype({"tenure_months": object})
    features.loc[[3, 8, 9], "tenure_months"] = ["12,5", "n.a.", "twelve"]
    customers.features = features
    report = validate_dataset(customers, None, customers_data_config())
    assert report.errors == [
        "column 'tenure_months': 3 rows are not numeric (dtype object; values '12,5', 'n.a.', 'twelve'); "
        "declare data.columns.tenure_months.type: categorical if the column holds categories"
    ]
    [issue] = report.issues
    assert issue.kind == NOT_NUMERIC and issue.rows.tolist() == [3, 8, 9]


def test_missing_values_where_the_config_forbids_them(customers: Dataset) -> None:
    report = validate_dataset(
        customers, None, customers_data_config(satisfaction=ColumnOverride(nullable=False))
    )
    assert report.errors == [
        "column 'satisfaction': 61 rows have missing values where none are allowed; "
        "declare data.columns.satisfaction.nullable: true if they may be missing"
    ]
    with pytest.raises(DataValidationError, match="column 'satisfaction': 61 rows have missing values"):
        ensure_valid(customers, None, customers_data_config(satisfaction=ColumnOverride(nullable=False)))


def test_missing_values_where_the_champion_allows_none(customers: Dataset, champion: FeatureSchema) -> None:
    customers.features.loc[[0, 1], "device"] = None
    report = validate_dataset(customers, champion, customers_data_config())
    assert report.errors == [
        "column 'device': 2 rows have missing values where none are allowed (the champion's schema); "
        "declare data.columns.device.nullable: true if they may be missing"
    ]
    assert validate_dataset(
        customers, champion, customers_data_config(device=ColumnOverride(nullable=True))
    ).ok


def test_unknown_categories_of_a_declared_vocabulary(customers: Dataset) -> None:
    customers.features.loc[[5, 6, 7], "plan"] = ["gold", "Basic", "gold"]
    declared = customers_data_config(plan=ColumnOverride(categories=["basic", "standard", "premium"]))
    report = validate_dataset(customers, None, declared)
    assert report.errors == [
        "column 'plan': 3 rows have unknown categories 'gold', 'Basic'; "
        "known: ['basic', 'standard', 'premium']"
    ]
    assert report.issues[0].kind == UNKNOWN_CATEGORY


def test_categories_the_champion_has_not_seen_are_a_warning(
    customers: Dataset, champion: FeatureSchema
) -> None:
    """New base-data categories are learnt by the new model; only a declared vocabulary refuses them."""
    customers.features.loc[[10, 11], "device"] = "tablet"
    report = validate_dataset(customers, champion, customers_data_config())
    assert report.ok
    assert report.warnings == [
        "column 'device': 2 rows have unknown categories 'tablet'; known: ['android', 'ios', 'web'] "
        "(the champion's schema)"
    ]


def test_out_of_range_against_the_champion(customers: Dataset, champion: FeatureSchema) -> None:
    customers.features.loc[[1, 2], "monthly_spend"] = [5_000.0, -900.0]
    report = validate_dataset(customers, champion, customers_data_config())
    assert len(report.errors) == 1
    assert report.errors[0].startswith("column 'monthly_spend': 2 rows outside the plausible range [")
    assert report.issues[0].kind == OUT_OF_RANGE


def test_columns_and_overrides_that_do_not_match(customers: Dataset, champion: FeatureSchema) -> None:
    customers.features = customers.features.drop(columns=["region"]).assign(extra=1.0)
    report = validate_dataset(
        customers, champion, customers_data_config(colour=ColumnOverride(type="categorical"))
    )
    assert "columns missing compared with the champion's schema: ['region']" in report.errors
    assert "columns not in the champion's schema: ['extra']" in report.errors
    assert any(
        e.startswith("data.columns overrides ['colour'], which are not feature columns")
        for e in report.errors
    )


def test_ids_and_high_cardinality_are_warnings(customers: Dataset) -> None:
    assert customers.ids is not None
    customers.ids.iloc[1] = customers.ids.iloc[0]
    customers.features["free_text"] = [f"note {i}" for i in range(len(customers.features))]
    report = validate_dataset(customers, None, customers_data_config())
    assert report.ok
    assert "id column 'customer_id': 1 rows repeat an earlier id" in report.warnings
    assert any(
        w.startswith("column 'free_text': 600 categories in 600 rows looks like an id")
        for w in report.warnings
    )


def test_row_reasons_name_each_rows_problems(champion: FeatureSchema) -> None:
    """The row-level view the feedback quarantine reuses: "" for a good row, else its reasons."""
    rows = pd.DataFrame(
        [
            {"plan": "basic", "region": None, "device": "ios", "signup_channel": "ads", "tenure_months": 5,
             "monthly_spend": 12.0, "support_tickets": 1, "satisfaction": None},
            {"plan": "basic", "region": "north", "device": None, "signup_channel": "ads", "tenure_months": 5,
             "monthly_spend": 1e6, "support_tickets": 1, "satisfaction": 3.0},
            {"plan": "basic", "region": "north", "device": "tablet", "signup_channel": "ads",
             "tenure_months": "x", "monthly_spend": 12.0, "support_tickets": 1, "satisfaction": np.inf},
        ]
    )  # fmt: skip
    reasons = row_reasons(rows, champion)
    assert reasons.tolist() == [
        "",
        "device: missing value; monthly_spend: out of range (1000000.0)",
        "tenure_months: not a number ('x'); satisfaction: infinite value",
    ]  # an unseen category of an open vocabulary ('tablet') is not a reason: the champion served it
    closed = row_reasons(rows.iloc[[2]], champion, unknown_is_error=True)
    assert "device: unknown category 'tablet'" in closed.iloc[0]
    missing_column = row_reasons(rows.drop(columns=["plan"]).iloc[[0]], champion)
    assert missing_column.tolist() == ["plan: missing column"]
    assert {i.kind for i in validate_dataset(_dataset(rows), champion, customers_data_config()).issues} >= {
        MISSING
    }


def _dataset(rows: pd.DataFrame) -> Dataset:
    target = pd.Series([0, 1, 2], name="outcome")
    return Dataset(rows, target, ["cancels", "downgrades", "renews"], "outcome")
