"""Column kinds for mixed schemas: nullable numbers, categories (open or closed), the id column.

Property-based like test_batch_validation.py: the column-wise verdict, values and error text must be
the row-wise validator's, for random mixed schemas and batches with any faults.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlstack.batch_validation import CategoricalKind, column_kind, validate_batch
from mlstack.schema import CATEGORICAL, ClassSpec, FeatureSchema, FeatureSpec, SchemaError
from tests.unit.schema.test_properties import PROPERTY_SETTINGS, float32_numbers, names

ID = "row_id"
words = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=8)


@st.composite
def mixed_schemas(draw: st.DrawFn) -> FeatureSchema:
    feature_names = draw(st.lists(names.filter(lambda n: n != ID), min_size=1, max_size=6, unique=True))
    specs = []
    for name in feature_names:
        nullable = draw(st.booleans())
        if draw(st.booleans()):
            categories = tuple(draw(st.lists(words, min_size=1, max_size=4, unique=True)))
            unknown: Literal["ignore", "error"] = draw(st.sampled_from(["ignore", "error"]))
            specs.append(FeatureSpec(name, typical=categories[0], kind=CATEGORICAL, categories=categories,
                                     nullable=nullable, unknown=unknown))  # fmt: skip
        else:
            specs.append(FeatureSpec(name, -1.0, 1.0, 0.0, nullable=nullable))
    return FeatureSchema(tuple(specs), (ClassSpec(0, "a"),), id_column=draw(st.sampled_from([None, ID])))


@st.composite
def value_for(draw: st.DrawFn, spec: FeatureSpec) -> Any:
    if spec.is_categorical:
        options: list[st.SearchStrategy[Any]] = [st.sampled_from(spec.categories), words]  # known, or unseen
        if spec.nullable:
            options += [st.none(), st.just("")]
        return draw(st.one_of(*options))
    return draw(st.one_of(float32_numbers, st.none()) if spec.nullable else float32_numbers)


FAULTS = [
    "none",
    "empty",
    "number_for_category",
    "string_for_number",
    "nan",
    "bool",
    "drop_key",
    "bad_id",
    "key",
]
fault = st.sampled_from(FAULTS)


@st.composite
def mixed_batches(draw: st.DrawFn) -> tuple[FeatureSchema, list[Any]]:
    schema = draw(mixed_schemas())
    batch: list[Any] = []
    for _ in range(draw(st.integers(1, 6))):
        instance: dict[str, Any] = {spec.name: draw(value_for(spec)) for spec in schema.features}
        if schema.id_column and draw(st.booleans()):
            instance[schema.id_column] = draw(st.one_of(words, st.integers(0, 10**6), st.none()))
        for broken in draw(st.lists(fault, max_size=2)):
            spec = draw(st.sampled_from(schema.features))
            if broken == "none":
                instance[spec.name] = None
            elif broken == "empty":
                instance[spec.name] = ""
            elif broken == "number_for_category":
                instance[spec.name] = draw(float32_numbers)
            elif broken == "string_for_number":
                instance[spec.name] = draw(words)
            elif broken == "nan":
                instance[spec.name] = math.nan
            elif broken == "bool":
                instance[spec.name] = draw(st.booleans())
            elif broken == "drop_key":
                instance.pop(spec.name, None)
            elif broken == "bad_id":
                instance[ID] = draw(st.sampled_from([[1], {"a": 1}, True]))
            else:
                instance[draw(names.filter(lambda n: n not in schema.feature_names and n != ID))] = 1
        batch.append(instance)
    return schema, batch


def row_wise(schema: FeatureSchema, batch: list[Any]) -> tuple[str, Any]:
    try:
        rows = [schema.validate_instance(instance, index) for index, instance in enumerate(batch)]
    except SchemaError as exc:
        return "error", (str(exc), exc.field, exc.index)
    return "ok", schema.model_frame(pd.DataFrame(rows, columns=schema.feature_names))


def column_wise(schema: FeatureSchema, batch: list[Any]) -> tuple[str, Any]:
    try:
        validated = validate_batch(batch, schema)
    except SchemaError as exc:
        return "error", (str(exc), exc.field, exc.index)
    columns = {spec.name: validated.column(i) for i, spec in enumerate(schema.features)}
    return "ok", schema.model_frame(pd.DataFrame(columns))


@given(mixed_batches())
@PROPERTY_SETTINGS
def test_mixed_kinds_reach_the_row_wise_verdict(case: tuple[FeatureSchema, list[Any]]) -> None:
    schema, batch = case
    expected, got = row_wise(schema, batch), column_wise(schema, batch)
    assert got[0] == expected[0], (got, expected)
    if expected[0] == "error":
        assert got[1] == expected[1]
    else:
        pd.testing.assert_frame_equal(got[1], expected[1])


def test_kinds_per_feature_type() -> None:
    assert column_kind(FeatureSpec("a", 0.0, 1.0, 0.5)).name == "numeric"
    assert column_kind(FeatureSpec("a", 0.0, 1.0, 0.5, nullable=True)).name == "numeric_nullable"
    closed = column_kind(FeatureSpec("p", kind=CATEGORICAL, categories=("x", "y"), unknown="error"))
    assert isinstance(closed, CategoricalKind) and closed.categories == frozenset({"x", "y"})
    assert closed.name == "categorical:p" and closed.json_types == frozenset({str})
    opened = column_kind(FeatureSpec("q", kind=CATEGORICAL, categories=("x",), nullable=True))
    assert isinstance(opened, CategoricalKind) and opened.categories is None
    assert opened.json_types == frozenset({str, type(None)})


def test_a_nan_literal_is_not_a_null() -> None:
    schema = FeatureSchema((FeatureSpec("a", 0.0, 1.0, 0.5, nullable=True),), (ClassSpec(0, "a"),))
    assert np.isnan(validate_batch([{"a": None}], schema).column(0)[0])
    with pytest.raises(SchemaError, match="finite") as raised:
        validate_batch([{"a": 0.5}, {"a": math.nan}], schema)
    assert (raised.value.field, raised.value.index) == ("a", 1)


def test_a_left_out_nullable_feature_is_logged_as_null() -> None:
    schema = FeatureSchema(
        (FeatureSpec("a", 0.0, 1.0, 0.5, nullable=True), FeatureSpec("b", 0.0, 1.0, 0.5)),
        (ClassSpec(0, "a"),),
    )
    validated = validate_batch([{"b": 0.1}, {"a": 0.2, "b": 0.3}], schema)
    assert validated.instances == [{"a": None, "b": 0.1}, {"a": 0.2, "b": 0.3}]
