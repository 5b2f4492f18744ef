"""The column-wise batch validator reaches the row-wise validator's verdict, error text included.

Property-based: random schemas and batches in which any instance may be broken in several ways at
once (so the *first* error in row order, and within a row in the row-wise rule order, matters).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlstack.batch_validation import NUMERIC, validate_batch
from mlstack.schema import FLOAT32_MAX, ClassSpec, FeatureSchema, FeatureSpec, SchemaError
from tests.unit.schema.test_properties import (
    PROPERTY_SETTINGS,
    float32_numbers,
    names,
    non_numbers,
    schema_and_batch,
    schemas,
)

breakage = st.sampled_from(
    ["missing", "unknown", "non_numeric", "nan", "inf", "beyond_float32", "huge_int", "not_an_object"]
)


@st.composite
def messy_batch(draw: st.DrawFn) -> tuple[FeatureSchema, list[Any]]:
    """A batch where every instance may carry zero, one or two faults of any kind."""
    schema, batch = draw(schema_and_batch())
    out: list[Any] = []
    for instance in batch:
        broken: Any = dict(instance)
        for fault in draw(st.lists(breakage, max_size=2)):
            field = draw(st.sampled_from(schema.feature_names))
            if fault == "not_an_object":
                broken = draw(st.one_of(non_numbers.filter(lambda v: not isinstance(v, dict)), st.floats()))
                break
            if fault == "missing":
                broken.pop(field, None)
            elif fault == "unknown":
                broken[draw(names.filter(lambda n: n not in schema.feature_names))] = draw(float32_numbers)
            elif fault == "non_numeric":
                broken[field] = draw(non_numbers)
            elif fault == "nan":
                broken[field] = math.nan
            elif fault == "inf":
                broken[field] = draw(st.sampled_from([math.inf, -math.inf]))
            elif fault == "beyond_float32":
                broken[field] = draw(st.floats(FLOAT32_MAX * 1.01, 1e300)) * draw(st.sampled_from([1, -1]))
            else:
                broken[field] = draw(st.integers(2**1024, 2**1030)) * draw(st.sampled_from([1, -1]))
        out.append(broken)
    return schema, out


def row_wise(schema: FeatureSchema, batch: list[Any]) -> tuple[str, Any]:
    try:
        rows = [schema.validate_instance(instance, index) for index, instance in enumerate(batch)]
    except SchemaError as exc:
        return "error", (str(exc), exc.field, exc.index)
    return "ok", np.asarray(rows, dtype=np.float64)


def column_wise(schema: FeatureSchema, batch: list[Any]) -> tuple[str, Any]:
    try:
        return "ok", validate_batch(batch, schema).matrix()
    except SchemaError as exc:
        return "error", (str(exc), exc.field, exc.index)


@given(st.one_of(schema_and_batch(), messy_batch()))
@PROPERTY_SETTINGS
def test_same_verdict_and_same_error_as_row_by_row(case: tuple[FeatureSchema, list[Any]]) -> None:
    schema, batch = case
    expected, got = row_wise(schema, batch), column_wise(schema, batch)
    assert got[0] == expected[0], (got, expected)
    if got[0] == "ok":
        assert got[1].dtype == np.float64
        np.testing.assert_array_equal(got[1], expected[1])
    else:
        assert got[1] == expected[1]  # message, field and instance index


def wine_like(features: int) -> FeatureSchema:
    specs = tuple(FeatureSpec(f"f{i}", 0.0, 1.0, 0.5) for i in range(features))
    return FeatureSchema(specs, (ClassSpec(0, "a"), ClassSpec(1, "b")))


@pytest.mark.parametrize("features", [1, 2, 13])
def test_a_clean_batch_comes_back_as_one_float64_matrix_in_schema_order(features: int) -> None:
    schema = wine_like(features)
    batch = [
        {f"f{i}": (row * 10 + i if i % 2 else row + i / 10) for i in reversed(range(features))}
        for row in range(50)
    ]
    validated = validate_batch(batch, schema)
    expected = np.array(
        [[instance[f"f{i}"] for i in range(features)] for instance in batch], dtype=np.float64
    )
    np.testing.assert_array_equal(validated.matrix(), expected)
    assert validated.instances is batch and validated.columns == {NUMERIC.name: tuple(range(features))}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (True, "must be a number, got bool"),
        (None, "is required"),
        ("1.5", "must be a number, got str"),
        (math.nan, "must be finite (not NaN or infinity)"),
        (-math.inf, "must be finite (not NaN or infinity)"),
        (FLOAT32_MAX * 2, "3.40282"),
        (10**400, "is too large for a number"),
    ],
)
def test_the_first_bad_value_is_named_as_the_row_wise_validator_names_it(value: Any, message: str) -> None:
    schema = wine_like(13)
    batch: list[Any] = [{f"f{i}": 0.5 for i in range(13)} for _ in range(100)]
    batch[97] = {**batch[97], "f3": value}
    batch[98] = {**batch[98], "f1": value}  # a later row: not the first error
    with pytest.raises(SchemaError) as raised:
        validate_batch(batch, schema)
    assert (raised.value.index, raised.value.field) == (97, "f3")
    assert str(raised.value).startswith("instances[97].f3: ") and message in str(raised.value)
    with pytest.raises(SchemaError) as row_wise_error:
        schema.validate_instance(batch[97], 97)
    assert str(raised.value) == str(row_wise_error.value)


@given(schemas())
@PROPERTY_SETTINGS
def test_an_empty_batch_is_refused(schema: FeatureSchema) -> None:
    with pytest.raises(SchemaError) as raised:
        validate_batch([], schema)
    assert raised.value.field == "instances"
