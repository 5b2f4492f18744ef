"""Feature types: inference from data, the config's overrides, and the schema's two formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlstack.config import ColumnOverride, DataConfig, load_config
from mlstack.data import load_base_dataset
from mlstack.feature_types import infer_feature, infer_kind, infer_schema, with_overrides
from mlstack.schema import CATEGORICAL, NUMERIC, FeatureSchema, FeatureSpec, SchemaError, category_text
from tests.support.customers import CUSTOMERS_CSV, customers_data_config

# --------------------------------------------------------------------------- inference


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        ([1, 2, 3], NUMERIC),
        ([1.5, None, 2.5], NUMERIC),
        ([True, False, True], NUMERIC),
        (["a", "b", "a"], CATEGORICAL),
        (["1", "2", "3"], NUMERIC),  # text that parses: numbers read as text
        (["1"] * 19 + ["n.a."], NUMERIC),  # 95% parse: a typo to report, not a category
        (["1"] * 8 + ["x", "y"], CATEGORICAL),  # 80% parse: codes with letters are categories
        ([None, None], NUMERIC),  # nothing to go on: the safe default
        (["", "  ", "a"], CATEGORICAL),  # blank strings are missing, not values
    ],
)
def test_infer_kind(values: list[object], kind: str) -> None:
    assert infer_kind(pd.Series(values)) == kind


def test_a_numeric_column_records_range_median_and_gaps() -> None:
    spec = infer_feature("age", pd.Series([30.0, np.nan, 50.0, 40.0]))
    assert spec == FeatureSpec("age", 30.0, 50.0, 40.0, kind=NUMERIC, nullable=True)
    full = infer_feature("age", pd.Series([1, 2, 3]))
    assert not full.nullable and (full.minimum, full.maximum, full.typical) == (1.0, 3.0, 2.0)


def test_a_categorical_column_records_sorted_categories_and_the_most_frequent() -> None:
    spec = infer_feature("plan", pd.Series(["pro", "basic", "pro", None, ""]))
    assert spec.kind == CATEGORICAL and spec.categories == ("basic", "pro")
    assert spec.typical == "pro" and spec.nullable and spec.unknown == "ignore"
    assert spec.minimum is None and spec.maximum is None


def test_numbers_in_a_categorical_column_become_their_text() -> None:
    codes = pd.Series([7.0, 12.0, np.nan, 7.5, True])
    assert category_text(codes).tolist()[:2] == ["7", "12"]
    assert pd.isna(category_text(codes).iloc[2]) and category_text(codes).tolist()[3:] == ["7.5", "True"]
    spec = infer_feature("zone", pd.Series([1, 2, 1]), ColumnOverride(type="categorical"))
    assert spec.categories == ("1", "2") and spec.typical == "1"


def test_the_customers_fixture_is_inferred_as_documented() -> None:
    config = customers_data_config()
    dataset = load_base_dataset(config)
    assert "customer_id" not in dataset.features and "notes" not in dataset.features
    assert dataset.ids is not None and dataset.ids.iloc[0] == "C100000"
    schema = infer_schema(dataset.features, dataset.target, dataset.class_names, "outcome", config)
    kinds = {f.name: f.kind for f in schema.features}
    assert kinds == {
        "plan": CATEGORICAL,
        "region": CATEGORICAL,
        "device": CATEGORICAL,
        "signup_channel": CATEGORICAL,
        "tenure_months": NUMERIC,
        "monthly_spend": NUMERIC,
        "support_tickets": NUMERIC,
        "satisfaction": NUMERIC,
    }
    nullable = {f.name for f in schema.features if f.nullable}
    assert nullable == {"region", "signup_channel", "monthly_spend", "satisfaction"}
    assert schema.feature("device").categories == ("android", "ios", "web")
    assert schema.id_column == "customer_id"
    assert [c.name for c in schema.classes] == ["cancels", "downgrades", "renews"]


# --------------------------------------------------------------------------- overrides


def test_overrides_set_type_categories_nullability_and_the_unknown_policy() -> None:
    config = customers_data_config(
        plan=ColumnOverride(categories=["basic", "standard", "premium", "family"], nullable=False),
        support_tickets=ColumnOverride(type="categorical"),
        satisfaction=ColumnOverride(nullable=False),
        region=ColumnOverride(unknown="error"),
    )
    dataset = load_base_dataset(config)
    schema = infer_schema(dataset.features, dataset.target, dataset.class_names, "outcome", config)
    plan = schema.feature("plan")
    assert plan.categories == ("basic", "standard", "premium", "family")  # declared order, declared extra
    assert plan.unknown == "error" and not plan.nullable  # declared categories close the vocabulary
    tickets = schema.feature("support_tickets")
    assert tickets.is_categorical and tickets.categories[:2] == ("0", "1") and tickets.unknown == "ignore"
    assert not schema.feature("satisfaction").nullable  # declared, although the data has gaps
    assert schema.feature("region").unknown == "error" and schema.feature("region").categories[0] == "east"


def test_a_declared_categorical_column_is_read_as_text(tmp_path: Path) -> None:
    csv = tmp_path / "codes.csv"
    csv.write_text("zip,y\n007,0\n010,1\n007,0\n" + "123,1\n" * 5 + "124,0\n" * 5)
    config = DataConfig(
        source="csv", csv_path=str(csv), target="y", columns={"zip": ColumnOverride(type="categorical")}
    )
    dataset = load_base_dataset(config)
    schema = infer_schema(dataset.features, dataset.target, dataset.class_names, "y", config)
    assert schema.feature("zip").categories == ("007", "010", "123", "124")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"columns": {"age": {"type": "numeric", "categories": ["a"]}}}, "categorical columns"),
        ({"columns": {"plan": {"categories": ["a", "a"]}}}, "distinct"),
        ({"columns": {"plan": {"categories": []}}}, "must not be empty"),
        ({"columns": {"plan": {"type": "text"}}}, "type"),
        ({"columns": {"plan": {"nulable": True}}}, "nulable"),
        ({"drop_columns": ["target"]}, "cannot be dropped"),
        ({"id_column": "customer_id", "columns": {"customer_id": {"type": "categorical"}}}, "overridden"),
    ],
)
def test_bad_overrides_are_refused_naming_the_key(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_config(environ={}, overrides={f"data.{k}": v for k, v in data.items()})


def test_dropping_or_identifying_a_column_the_data_lacks_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"name \['nope'\], which the wine data does not have"):
        load_base_dataset(DataConfig(drop_columns=["nope"]))
    with pytest.raises(ValueError, match="'customer_no'"):
        load_base_dataset(
            DataConfig(source="csv", csv_path=str(CUSTOMERS_CSV), target="outcome", id_column="customer_no")
        )


def test_overrides_on_the_champions_schema() -> None:
    champion = FeatureSchema(
        (
            FeatureSpec("age", 18.0, 90.0, 40.0),
            FeatureSpec("plan", typical="a", kind=CATEGORICAL, categories=("a", "b")),
            FeatureSpec("zone", 1.0, 9.0, 3.0),
        ),
        (),
    )
    data = DataConfig(
        columns={
            "age": ColumnOverride(nullable=True),
            "plan": ColumnOverride(categories=["a", "b", "c"]),
            "zone": ColumnOverride(type="categorical"),
        }
    )
    expected = with_overrides(champion, data)
    assert expected.feature("age").nullable and expected.feature("age").minimum == 18.0
    assert (
        expected.feature("plan").categories == ("a", "b", "c") and expected.feature("plan").unknown == "error"
    )
    zone = expected.feature("zone")
    assert (
        zone.is_categorical and zone.categories == () and zone.minimum is None
    )  # retyped: no range, no vocabulary


# --------------------------------------------------------------------------- the schema's formats and values


def test_a_format_1_schema_loads_as_numeric_and_required() -> None:
    """A champion logged before feature types existed must still load (and serve)."""
    old = {
        "target": "target",
        "features": [{"name": "alcohol", "minimum": 11.0, "maximum": 14.8, "typical": 13.0}],
        "classes": [{"label": 0, "name": "class_0"}, {"label": 1, "name": "class_1"}],
    }
    schema = FeatureSchema.from_dict(old)
    assert schema.features == (FeatureSpec("alcohol", 11.0, 14.8, 13.0),)
    assert schema.all_numeric_required and schema.id_column is None
    assert schema.to_matrix([{"alcohol": 12.5}]).tolist() == [[12.5]]
    assert FeatureSchema.from_dict(schema.to_dict()) == schema


def test_a_mixed_schema_round_trips_and_types_a_model_frame() -> None:
    dataset = load_base_dataset(customers_data_config())
    schema = infer_schema(
        dataset.features, dataset.target, dataset.class_names, "outcome", customers_data_config()
    )
    assert FeatureSchema.from_dict(schema.to_dict()) == schema
    assert schema.to_dict()["format"] == 2
    frame = schema.model_frame(dataset.features)
    assert frame["plan"].dtype == object and frame["tenure_months"].dtype == np.float64
    assert frame["region"].isna().sum() == dataset.features["region"].isna().sum()


@pytest.fixture
def mixed() -> FeatureSchema:
    return FeatureSchema(
        (
            FeatureSpec("age", 18.0, 90.0, 40.0, nullable=True),
            FeatureSpec("plan", typical="a", kind=CATEGORICAL, categories=("a", "b"), unknown="error"),
            FeatureSpec("region", typical="n", kind=CATEGORICAL, categories=("n", "s"), nullable=True),
        ),
        (),
        id_column="customer",
    )


def test_request_values_are_checked_per_type(mixed: FeatureSchema) -> None:
    row = mixed.validate_instance({"age": None, "plan": "a", "region": "", "customer": 7}, 0)
    assert row == [None, "a", None]  # the id column may be sent and is left out
    assert mixed.validate_instance({"age": 30, "plan": "b", "region": "west"}) == [30.0, "b", "west"]
    frame = mixed.to_frame([{"age": None, "plan": "a", "region": None}])
    assert np.isnan(frame["age"].iloc[0]) and pd.isna(frame["region"].iloc[0])


@pytest.mark.parametrize(
    ("instance", "field", "message"),
    [
        ({"age": 1, "plan": None, "region": "n"}, "plan", "is required"),
        ({"age": 1, "plan": "", "region": "n"}, "plan", "is required"),
        ({"age": 1, "plan": 3, "region": "n"}, "plan", "must be a string"),
        ({"age": 1, "plan": "c", "region": "n"}, "plan", r"unknown category 'c'; expected one of \['a', "),
        ({"age": "1", "plan": "a", "region": "n"}, "age", "must be a number"),
        ({"age": float("nan"), "plan": "a", "region": "n"}, "age", "must be finite"),
        ({"age": 1, "plan": "a", "region": "n", "x": 1}, "x", "unknown feature"),
    ],
)
def test_request_value_errors_name_the_field(
    mixed: FeatureSchema, instance: dict[str, object], field: str, message: str
) -> None:
    with pytest.raises(SchemaError, match=message) as raised:
        mixed.validate_instance(instance, 3)
    assert (raised.value.field, raised.value.index) == (field, 3)


def test_a_mixed_schema_has_no_matrix_form(mixed: FeatureSchema) -> None:
    with pytest.raises(TypeError, match="to_frame"):
        mixed.to_matrix([{"age": 1, "plan": "a", "region": "n"}])
