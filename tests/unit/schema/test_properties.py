"""Hypothesis properties of the feature schema (the one validator every prediction goes through).

- Any valid mapping passes, in any key order, and round-trips to its float32 row in feature order.
- Any missing, unknown, non-numeric or non-finite value raises SchemaError naming the field and
  the instance.
- The predictor's bulk fast path (`fast_matrix`) agrees with the schema on every input: the same
  matrix, or an error naming the same field.
- The schema itself round-trips through `to_dict`/`from_dict` (it is stored in the model metadata).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from mlstack_api.request_validation import RequestError, fast_matrix

from mlstack.schema import FLOAT32_MAX, ClassSpec, FeatureSchema, FeatureSpec, SchemaError

PROPERTY_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

names = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=24)
finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@st.composite
def schemas(draw: st.DrawFn) -> FeatureSchema:
    feature_names = draw(st.lists(names, min_size=1, max_size=12, unique=True))
    features = []
    for name in feature_names:
        low, high = sorted((draw(finite), draw(finite)))
        typical = draw(st.floats(low, high)) if low < high else low  # 0.0 and -0.0 sort as equal
        features.append(FeatureSpec(name, low, high, typical))
    labels = draw(st.lists(st.integers(0, 20), min_size=1, max_size=5, unique=True))
    classes = tuple(ClassSpec(label, draw(names)) for label in sorted(labels))
    return FeatureSchema(tuple(features), classes, draw(names))


# JSON numbers as the API parses them: ints and floats within float32 range.
float32_numbers = st.one_of(
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(min_value=-FLOAT32_MAX, max_value=FLOAT32_MAX, allow_nan=False, allow_infinity=False),
)
non_numbers = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=10),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
non_finite = st.sampled_from([math.nan, math.inf, -math.inf])


@st.composite
def valid_instance(draw: st.DrawFn, schema: FeatureSchema) -> dict[str, Any]:
    values = {name: draw(float32_numbers) for name in schema.feature_names}
    order = draw(st.permutations(schema.feature_names))  # key order must not matter
    return {name: values[name] for name in order}


@st.composite
def schema_and_batch(draw: st.DrawFn) -> tuple[FeatureSchema, list[dict[str, Any]]]:
    schema = draw(schemas())
    return schema, draw(st.lists(valid_instance(schema), min_size=1, max_size=8))


@given(schema_and_batch())
@PROPERTY_SETTINGS
def test_any_valid_mapping_passes_and_round_trips(case: tuple[FeatureSchema, list[dict[str, Any]]]) -> None:
    schema, batch = case
    for index, instance in enumerate(batch):
        assert schema.validate_instance(instance, index) == [float(instance[n]) for n in schema.feature_names]
    matrix = schema.to_matrix(batch)
    assert matrix.dtype == np.float32 and matrix.shape == (len(batch), len(schema.features))
    expected = np.array([[instance[n] for n in schema.feature_names] for instance in batch], dtype=np.float32)
    np.testing.assert_array_equal(matrix, expected)
    assert np.isfinite(matrix).all()


@st.composite
def broken_batch(draw: st.DrawFn) -> tuple[FeatureSchema, list[Any], int, str]:
    """A valid batch with one instance broken in one way; returns where and which field."""
    schema, batch = draw(schema_and_batch())
    index = draw(st.integers(0, len(batch) - 1))
    instance = dict(batch[index])
    kind = draw(st.sampled_from(["missing", "unknown", "non_numeric", "non_finite"]))
    if kind == "missing":
        field = draw(st.sampled_from(schema.feature_names))
        del instance[field]
    elif kind == "unknown":
        field = draw(names.filter(lambda n: n not in schema.feature_names))
        instance[field] = draw(float32_numbers)
    else:
        field = draw(st.sampled_from(schema.feature_names))
        instance[field] = draw(non_numbers if kind == "non_numeric" else non_finite)
    batch[index] = instance
    return schema, batch, index, field


@given(broken_batch())
@PROPERTY_SETTINGS
def test_any_bad_value_raises_schema_error_naming_the_field(
    case: tuple[FeatureSchema, list[Any], int, str],
) -> None:
    schema, batch, index, field = case
    with pytest.raises(SchemaError) as raised:
        schema.validate_instance(batch[index], index)
    assert (raised.value.field, raised.value.index) == (field, index)
    assert str(raised.value).startswith(f"instances[{index}].{field}: ")
    with pytest.raises(SchemaError) as in_batch:
        schema.to_matrix(batch)
    assert (in_batch.value.field, in_batch.value.index) == (field, index)


@given(schemas(), st.one_of(non_numbers.filter(lambda v: not isinstance(v, dict)), st.floats()))
@PROPERTY_SETTINGS
def test_a_non_mapping_instance_is_refused(schema: FeatureSchema, instance: Any) -> None:
    with pytest.raises(SchemaError, match="must be an object"):
        schema.validate_instance(instance, 0)


@given(schemas())
@PROPERTY_SETTINGS
def test_an_empty_batch_is_refused(schema: FeatureSchema) -> None:
    with pytest.raises(SchemaError) as raised:
        schema.to_matrix([])
    assert raised.value.field == "instances"


@given(schemas())
@PROPERTY_SETTINGS
def test_the_schema_round_trips_through_its_dict(schema: FeatureSchema) -> None:
    assert FeatureSchema.from_dict(schema.to_dict()) == schema


def outcome(call: Any) -> tuple[str, Any]:
    """('ok', matrix) or ('error', the field named); the two validators' errors are compared by field."""
    try:
        return "ok", call()
    except SchemaError as exc:
        return "error", f"instances[{exc.index}].{exc.field}" if exc.index is not None else exc.field
    except RequestError as exc:
        return "error", exc.field


@given(st.one_of(schema_and_batch(), broken_batch().map(lambda c: (c[0], c[1]))))
@PROPERTY_SETTINGS
def test_the_predictors_fast_path_agrees_with_the_schema(case: tuple[FeatureSchema, list[Any]]) -> None:
    schema, batch = case
    fast = outcome(lambda: fast_matrix(batch, schema))
    slow = outcome(lambda: schema.to_matrix(batch))
    assert fast[0] == slow[0], (fast, slow)
    if fast[0] == "ok":  # the fast path keeps float64 (sklearn sees the values as sent)
        np.testing.assert_array_equal(np.asarray(fast[1]).astype(np.float32), slow[1])
    else:
        assert fast[1] == slow[1]


# Known gaps in mlstack/schema.py (reported to its owner). The predictor itself is not affected:
# its fast path and parse_instances refuse both with a 422 naming the field (tests/unit/api/test_api.py).
@given(schemas(), st.integers(min_value=2**1024, max_value=2**1100))
@settings(max_examples=5, deadline=None)
def test_an_integer_too_large_for_a_float_raises_schema_error(schema: FeatureSchema, huge: int) -> None:
    instance = dict.fromkeys(schema.feature_names, 0.0)
    instance[schema.feature_names[0]] = huge
    with pytest.raises(SchemaError):
        schema.validate_instance(instance, 0)


@given(schemas(), st.floats(min_value=FLOAT32_MAX * 2, max_value=1e300))
@settings(max_examples=5, deadline=None)
def test_to_matrix_never_returns_non_finite_values(schema: FeatureSchema, large: float) -> None:
    assume(len(schema.features) >= 1)
    instance = dict.fromkeys(schema.feature_names, 0.0)
    instance[schema.feature_names[0]] = large
    try:
        matrix = schema.to_matrix([instance])
    except SchemaError:
        return
    assert np.isfinite(matrix).all()


@given(schemas(), st.data())
@PROPERTY_SETTINGS
def test_the_batch_value_check_names_what_the_row_check_names(
    schema: FeatureSchema, data: st.DataObject
) -> None:
    """`check_values` (the predictor's batch path) and `validate_instance` give the same error."""
    rows = data.draw(st.integers(min_value=1, max_value=4))
    bad = st.sampled_from([float("nan"), float("inf"), -float("inf"), FLOAT32_MAX * 2, -FLOAT32_MAX * 4])
    values = [[data.draw(st.one_of(float32_numbers, bad)) for _ in schema.features] for _ in range(rows)]
    batch = [dict(zip(schema.feature_names, row, strict=True)) for row in values]
    matrix = np.array(values, dtype=np.float64)
    try:
        schema.to_matrix(batch)
        expected = None
    except SchemaError as exc:
        expected = str(exc)
    try:
        schema.check_values(matrix)
        found = None
    except SchemaError as exc:
        found = str(exc)
    assert found == expected
