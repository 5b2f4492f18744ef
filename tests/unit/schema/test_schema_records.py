"""The feature schema as stored and as a model input: its dict forms, categorical and nullable values,
the vectorised number check, and the frames a model is given.

Each rule is pinned with its exact output (what `make mutation` showed unpinned): the stored dict
keys, each error text, the first offending value of a batch, the dtypes and index of a model frame.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlstack.contract import METADATA_FEATURE_SCHEMA
from mlstack.schema import (
    FLOAT32_MAX,
    ClassSpec,
    FeatureSchema,
    FeatureSpec,
    SchemaError,
    category_text,
    invalid_numbers,
    numeric_values,
)

JUST_ABOVE = math.nextafter(FLOAT32_MAX, math.inf)
PLAN = FeatureSpec("plan", typical="pro", kind="categorical", categories=("basic", "pro"), unknown="error")
REGION = FeatureSpec("region", typical="eu", kind="categorical", categories=("eu", "us"), nullable=True)
AGE = FeatureSpec("age", 18.0, 90.0, 40.0, nullable=True)
INCOME = FeatureSpec("income", 0.0, 1e6, 5e4)
MIXED = FeatureSchema(
    features=(AGE, PLAN, REGION, INCOME),
    classes=(ClassSpec(0, "stays"), ClassSpec(1, "churns")),
    target="churn",
    id_column="customer_id",
)
NUMBERS = FeatureSchema(
    features=(FeatureSpec("a", 0.0, 1.0, 0.5), FeatureSpec("b", 0.0, 1.0, 0.5)), classes=(ClassSpec(0, "x"),)
)


def error_of(spec: FeatureSpec, value: Any) -> SchemaError:
    with pytest.raises(SchemaError) as caught:
        spec.check_value(value, 3)
    assert caught.value.index == 3 and caught.value.field == spec.name
    return caught.value


# -- values of each type -----------------------------------------------------------------------------


def test_a_missing_value_is_none_where_allowed_and_refused_where_not() -> None:
    assert AGE.check_value(None) is None
    assert REGION.check_value(None) is None and REGION.check_value("") is None
    assert error_of(INCOME, None).message == "is required (missing values are not allowed)"
    assert error_of(PLAN, "").message == "is required (missing values are not allowed)"
    assert error_of(PLAN, None).message == "is required (missing values are not allowed)"
    assert INCOME.check_value(0) == 0.0 and AGE.check_value(-0.0) == 0.0


def test_a_category_must_be_a_string_and_known_where_the_vocabulary_is_closed() -> None:
    assert PLAN.check_value("pro") == "pro"
    assert error_of(PLAN, 3).message == "must be a string (a category), got int"
    assert error_of(PLAN, True).message == "must be a string (a category), got bool"
    assert error_of(PLAN, "gold").message == "unknown category 'gold'; expected one of ['basic', 'pro']"
    assert REGION.check_value("apac") == "apac"  # open vocabulary: the encoder ignores it


def test_an_instance_of_mixed_types_with_its_id() -> None:
    instance = {"customer_id": "c-17", "age": None, "plan": "basic", "region": "", "income": 12}
    assert MIXED.validate_instance(instance, 0) == [None, "basic", None, 12.0]
    with pytest.raises(SchemaError) as caught:
        NUMBERS.validate_instance({"a": 1.0, "b": 1.0, "customer_id": "c-17"}, 2)
    assert str(caught.value) == "instances[2].customer_id: unknown feature; expected ['a', 'b']"


def test_the_schemas_views() -> None:
    assert MIXED.feature("plan") is PLAN
    with pytest.raises(KeyError):
        MIXED.feature("colour")
    assert MIXED.numeric_names == ["age", "income"] and MIXED.categorical_names == ["plan", "region"]
    assert not MIXED.all_numeric_required and NUMBERS.all_numeric_required
    assert not FeatureSchema((AGE,), ()).all_numeric_required
    assert MIXED.typical_instance() == {"age": 40.0, "plan": "pro", "region": "eu", "income": 5e4}


# -- the vectorised number check -------------------------------------------------------------------


def test_invalid_numbers_marks_nan_infinity_and_beyond_float32_only() -> None:
    values = np.array(
        [FLOAT32_MAX, -FLOAT32_MAX, -0.0, 0.0, JUST_ABOVE, -JUST_ABOVE, np.nan, np.inf, -np.inf]
    )
    assert invalid_numbers(values).tolist() == [False] * 4 + [True] * 5


def test_check_values_names_the_first_offending_value_in_row_order() -> None:
    NUMBERS.check_values(np.array([[FLOAT32_MAX, -FLOAT32_MAX], [0.0, -0.0]]))  # all valid: no error
    matrix = np.array([[0.5, 0.5], [0.5, JUST_ABOVE], [np.nan, 0.5]])
    with pytest.raises(SchemaError) as caught:
        NUMBERS.check_values(matrix)
    assert (caught.value.field, caught.value.index) == ("b", 1)
    assert caught.value.message == "magnitude must be at most 3.4028235e+38 (float32)"
    with pytest.raises(SchemaError) as caught:
        NUMBERS.check_values(np.array([[0.5, 0.5], [0.5, 0.5], [np.inf, np.nan]]))
    assert (caught.value.field, caught.value.index, caught.value.message) == (
        "a", 2, "must be finite (not NaN or infinity)",
    )  # fmt: skip


# -- batches and frames ----------------------------------------------------------------------------


def test_a_schema_with_categories_has_a_frame_not_a_matrix() -> None:
    with pytest.raises(
        TypeError, match=r"^a schema with categorical features has no matrix form; use to_frame$"
    ):
        MIXED.to_matrix([{"age": 1, "plan": "pro", "region": "eu", "income": 1}])
    with pytest.raises(SchemaError) as caught:
        MIXED.to_frame([])
    assert (caught.value.field, caught.value.message, caught.value.index) == (
        "instances", "must contain at least one instance", None,
    )  # fmt: skip


def test_to_frame_types_the_columns_and_names_the_instance_at_fault() -> None:
    frame = MIXED.to_frame(
        [
            {"age": 30, "plan": "pro", "region": None, "income": 1000},
            {"age": None, "plan": "basic", "region": "us", "income": 2.5},
        ]
    )
    assert list(frame.columns) == ["age", "plan", "region", "income"]
    assert frame["age"].dtype == np.float64 and frame["income"].dtype == np.float64
    assert frame["plan"].dtype == object and frame["region"].dtype == object
    assert frame["age"].tolist()[0] == 30.0 and math.isnan(frame["age"].tolist()[1])
    assert frame["plan"].tolist() == ["pro", "basic"]
    assert math.isnan(frame["region"].tolist()[0]) and frame["region"].tolist()[1] == "us"
    with pytest.raises(SchemaError) as caught:
        MIXED.to_frame([{"age": 1, "plan": "pro", "region": None, "income": 1}, {"age": 1, "plan": "gold"}])
    assert str(caught.value) == "instances[1].plan: unknown category 'gold'; expected one of ['basic', 'pro']"


def test_model_frame_keeps_the_index_and_reads_text_as_the_model_was_trained() -> None:
    raw = pd.DataFrame(
        {
            "age": ["31", "n.a.", None],
            "plan": ["pro", 7.0, ""],
            "region": [True, None, "eu"],
            "income": [1, 2, 3],
        },
        index=[10, 20, 30],
    )
    frame = MIXED.model_frame(raw)
    assert list(frame.index) == [10, 20, 30]
    assert frame["age"].iloc[0] == 31.0 and frame["age"].iloc[1:].isna().all()
    assert frame["plan"].iloc[:2].tolist() == ["pro", "7"] and pd.isna(frame["plan"].iloc[2])
    assert frame["region"].iloc[0] == "True" and pd.isna(frame["region"].iloc[1])


def test_numeric_values_and_category_text() -> None:
    flags = numeric_values(pd.Series([True, False], index=[5, 6]))
    assert flags.dtype == np.float64 and flags.tolist() == [1.0, 0.0] and list(flags.index) == [5, 6]
    numbers = numeric_values(pd.Series(["1.5", "x", None, 2]))
    assert numbers.dtype == np.float64 and numbers.tolist()[0] == 1.5 and numbers.iloc[1:3].isna().all()
    assert numbers.iloc[3] == 2.0
    text = category_text(pd.Series([None, "", 3.0, 2.5, np.float64(4.0), "a", pd.NA], index=list("abcdefg")))
    assert text.dtype == object and list(text.index) == list("abcdefg")
    assert text.iloc[2:6].tolist() == ["3", "2.5", "4", "a"]
    assert text.iloc[[0, 1, 6]].isna().all()
    empty = category_text(pd.Series([None, ""]))
    assert empty.dtype == object and empty.isna().all()


# -- the stored forms ------------------------------------------------------------------------------


def test_each_feature_is_stored_with_its_type() -> None:
    assert PLAN.to_dict() == {
        "name": "plan", "type": "categorical", "categories": ["basic", "pro"], "typical": "pro",
        "nullable": False, "unknown": "error",
    }  # fmt: skip
    assert AGE.to_dict() == {
        "name": "age", "type": "numeric", "minimum": 18.0, "maximum": 90.0, "typical": 40.0, "nullable": True,
    }  # fmt: skip
    assert MIXED.to_dict()["format"] == 2 and MIXED.to_dict()["id_column"] == "customer_id"
    assert FeatureSchema.from_dict(MIXED.to_dict()) == MIXED


def test_stored_defaults_are_required_numbers_and_an_open_vocabulary() -> None:
    categorical = FeatureSpec.from_dict({"name": "plan", "type": "categorical", "categories": ["a", 1]})
    assert categorical == FeatureSpec("plan", kind="categorical", categories=("a", "1"))
    assert categorical.nullable is False and categorical.unknown == "ignore" and categorical.typical is None
    assert FeatureSpec.from_dict({**PLAN.to_dict(), "typical": 7}).typical == "7"
    numeric = FeatureSpec.from_dict({"name": "age", "minimum": 1, "maximum": 2, "typical": None})
    assert numeric == FeatureSpec("age", 1.0, 2.0, None) and numeric.nullable is False
    assert FeatureSpec.from_dict({"name": "age", "minimum": None, "maximum": "3"}).maximum == 3.0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "age", "type": "date"}, "feature 'age': unknown type 'date'"),
        (
            {"name": "plan", "type": "categorical", "categories": [], "unknown": "warn"},
            "feature 'plan': unknown must be ignore or error, not 'warn'",
        ),
    ],
)
def test_a_malformed_stored_feature_is_refused_by_name(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=r"^feature ") as caught:
        FeatureSpec.from_dict(data)
    assert str(caught.value) == message


def test_the_schema_in_a_models_metadata() -> None:
    assert FeatureSchema.from_model_metadata(None) is None
    assert FeatureSchema.from_model_metadata({}) is None
    assert FeatureSchema.from_model_metadata({"other": 1}) is None
    assert FeatureSchema.from_model_metadata({METADATA_FEATURE_SCHEMA: MIXED.to_dict()}) == MIXED


@pytest.mark.parametrize("identifier", [True, [1], {"a": 1}])
def test_an_id_that_is_not_a_string_a_number_or_null_is_refused_by_name(identifier: Any) -> None:
    instance = {"age": 30, "plan": "pro", "region": "eu", "income": 1.0, "customer_id": identifier}
    with pytest.raises(SchemaError) as caught:
        MIXED.validate_instance(instance, 4)
    assert (caught.value.field, caught.value.index) == ("customer_id", 4)
    assert caught.value.message == "the id must be a string, a number or null"


@pytest.mark.parametrize("identifier", ["c-1", 7, 7.5, None])
def test_an_id_of_a_json_scalar_type_passes(identifier: Any) -> None:
    instance = {"age": 30, "plan": "pro", "region": "eu", "income": 1.0, "customer_id": identifier}
    assert MIXED.validate_instance(instance, 4) == [30.0, "pro", "eu", 1.0]
