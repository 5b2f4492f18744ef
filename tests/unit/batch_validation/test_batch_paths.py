"""Which path the batch validator takes, and what it returns on each.

The column-wise path exists to keep Python code per value off /predict: a well-formed batch must not
go through `FeatureSchema.validate_instance` at all, and a bad one only for the first offending
instance (whose error it phrases). A fallback to row-by-row validation gives the same verdict, only
slower, so these tests watch the calls: `validate_instance` is wrapped (still called through) to
record which instances it saw. The fallback path's own result is pinned with dict subclasses, which
the column-wise path leaves to it.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

import numpy as np
import pytest

from mlstack.batch_validation import (
    NULLABLE_NUMERIC,
    NUMERIC,
    CategoricalKind,
    ValidatedBatch,
    column_kind,
    validate_batch,
)
from mlstack.schema import FLOAT32_MAX, ClassSpec, FeatureSchema, FeatureSpec, SchemaError

CLASSES = (ClassSpec(0, "a"), ClassSpec(1, "b"))
THREE = FeatureSchema(
    (FeatureSpec("x", 0.0, 1.0, 0.5), FeatureSpec("y", 0.0, 1.0, 0.5), FeatureSpec("z", 0.0, 1.0, 0.5)),
    CLASSES,
)
ONE = FeatureSchema((FeatureSpec("x", 0.0, 1.0, 0.5),), CLASSES)
TWO = FeatureSchema((FeatureSpec("x", 0.0, 1.0, 0.5), FeatureSpec("y", 0.0, 1.0, 0.5)), CLASSES)


@pytest.fixture
def row_wise_calls(monkeypatch: pytest.MonkeyPatch) -> list[int | None]:
    """The `index` of every `validate_instance` call, in order."""
    calls: list[int | None] = []
    original = FeatureSchema.validate_instance

    def recording(self: FeatureSchema, instance: Any, index: int | None = None) -> list[Any]:
        calls.append(index)
        return original(self, instance, index)

    monkeypatch.setattr(FeatureSchema, "validate_instance", recording)
    return calls


def rows(schema: FeatureSchema, count: int, **changes: Any) -> list[dict[str, Any]]:
    batch = [{name: 0.25 * (i + 1) + j for j, name in enumerate(schema.feature_names)} for i in range(count)]
    for key, value in changes.items():
        index, _, name = key.partition("_")
        batch[int(index.removeprefix("i"))][name] = value
    return batch


@pytest.mark.parametrize("schema", [THREE, TWO, ONE], ids=["three features", "two features", "one feature"])
def test_a_clean_batch_never_goes_row_by_row(schema: FeatureSchema, row_wise_calls: list[int | None]) -> None:
    batch = rows(schema, 4)
    batch[1][schema.feature_names[-1]] = FLOAT32_MAX  # the edge is valid
    batch[2][schema.feature_names[0]] = -0.0
    validated = validate_batch(batch, schema)
    assert row_wise_calls == []
    expected = np.array([[instance[n] for n in schema.feature_names] for instance in batch], dtype=np.float64)
    assert validated.matrix().dtype == np.float64
    np.testing.assert_array_equal(validated.matrix(), expected)
    assert validated.instances is batch
    assert validated.columns == {NUMERIC.name: tuple(range(len(schema.features)))}
    assert set(validated.blocks) == {NUMERIC.name}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (math.nextafter(FLOAT32_MAX, math.inf), "magnitude must be at most 3.4028235e+38 (float32)"),
        (-1e39, "magnitude must be at most 3.4028235e+38 (float32)"),
        (math.nan, "must be finite (not NaN or infinity)"),
        (math.inf, "must be finite (not NaN or infinity)"),
    ],
)
def test_a_bad_value_sends_only_its_instance_row_by_row(
    value: float, message: str, row_wise_calls: list[int | None]
) -> None:
    batch = rows(THREE, 5, i3_y=value, i4_x=value)
    with pytest.raises(SchemaError) as caught:
        validate_batch(batch, THREE)
    assert row_wise_calls == [3]
    assert str(caught.value) == f"instances[3].y: {message}"


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"i1_y": "0.5"}, "instances[1].y: must be a number, got str"),
        ({"i1_y": True}, "instances[1].y: must be a number, got bool"),
        ({"i1_y": None}, "instances[1].y: is required (missing values are not allowed)"),
        ({"i1_y": 10**400}, "instances[1].y: is too large for a number"),
        ({"i1_w": 0.5}, "instances[1].w: unknown feature; expected ['x', 'y', 'z']"),
    ],
)
def test_what_the_bulk_checks_cannot_decide_goes_row_by_row_in_order(
    change: dict[str, Any], error: str, row_wise_calls: list[int | None]
) -> None:
    batch = rows(THREE, 3, **change)
    with pytest.raises(SchemaError) as caught:
        validate_batch(batch, THREE)
    assert str(caught.value) == error
    assert row_wise_calls == [0, 1]


def test_a_missing_feature_goes_row_by_row(row_wise_calls: list[int | None]) -> None:
    batch = rows(THREE, 2)
    del batch[1]["z"]
    with pytest.raises(SchemaError, match=r"^instances\[1\]\.z: missing feature$"):
        validate_batch(batch, THREE)
    assert row_wise_calls == [0, 1]


def test_a_mapping_that_is_not_a_dict_is_validated_row_by_row_to_the_same_result(
    row_wise_calls: list[int | None],
) -> None:
    batch: list[Any] = [OrderedDict(z=0.75, y=0.5, x=0.25), {"x": 1.0, "y": 2.0, "z": 3.0}]
    validated = validate_batch(batch, THREE)
    assert row_wise_calls == [0, 1]
    assert validated == ValidatedBatch(batch, validated.blocks, {NUMERIC.name: (0, 1, 2)})
    assert validated.instances is batch
    np.testing.assert_array_equal(validated.matrix(), np.array([[0.25, 0.5, 0.75], [1.0, 2.0, 3.0]]))
    assert validated.matrix().dtype == np.float64
    single = validate_batch([OrderedDict(x=0.5)], ONE)
    np.testing.assert_array_equal(single.matrix(), np.array([[0.5]]))


def test_an_empty_batch_is_refused() -> None:
    with pytest.raises(SchemaError) as caught:
        validate_batch([], THREE)
    assert (caught.value.field, caught.value.message, caught.value.index) == (
        "instances", "must contain at least one instance", None,
    )  # fmt: skip


def test_every_feature_type_has_a_column_kind() -> None:
    assert column_kind(FeatureSpec("x", 0.0, 1.0, 0.5)) is NUMERIC
    assert column_kind(FeatureSpec("x", 0.0, 1.0, 0.5, nullable=True)) is NULLABLE_NUMERIC
    open_vocabulary = column_kind(FeatureSpec("c", kind="categorical", categories=("a",)))
    assert open_vocabulary == CategoricalKind("c", nullable=False, categories=None)
    closed = column_kind(
        FeatureSpec("c", kind="categorical", categories=("a",), nullable=True, unknown="error")
    )
    assert closed == CategoricalKind("c", nullable=True, categories=frozenset({"a"}))


def test_nullable_features_and_the_id_column_are_validated_column_wise(
    row_wise_calls: list[int | None],
) -> None:
    with_nullable = FeatureSchema((*THREE.features, FeatureSpec("n", nullable=True)), CLASSES)
    batch = [{**row, "n": None if i else 0.5} for i, row in enumerate(rows(THREE, 2))]
    validated = validate_batch(batch, with_nullable)
    assert row_wise_calls == [] and validated.instances is batch
    assert math.isnan(validated.column(3)[1]) and validated.column(3)[0] == 0.5
    with_id = FeatureSchema(THREE.features, CLASSES, id_column="id")
    identified = [{**row, "id": f"r{i}"} for i, row in enumerate(rows(THREE, 2))]
    assert validate_batch(identified, with_id).matrix().shape == (2, 3) and row_wise_calls == []


def test_a_batch_with_other_kinds_has_no_numeric_matrix() -> None:
    batch = ValidatedBatch([{}], {NUMERIC.name: np.zeros((1, 1)), "categorical": np.array([["a"]])}, {})
    with pytest.raises(TypeError, match=r"^the batch has non-numeric columns: \['categorical'\]$"):
        batch.matrix()


def test_numeric_bad_rows_flags_rows_not_cells() -> None:
    block = np.array([[0.0, np.nan], [1.0, 2.0], [np.inf, -1e39]])
    assert NUMERIC.bad_rows(block).tolist() == [True, False, True]


def test_integers_and_floats_together_stay_column_wise(row_wise_calls: list[int | None]) -> None:
    """JSON numbers arrive as int or float; a batch holding both is still one bulk pass."""
    batch = [{"x": 0, "y": 0.5, "z": 1}, {"x": 0.25, "y": 1, "z": 0.75}]
    validated = validate_batch(batch, THREE)
    assert row_wise_calls == []
    np.testing.assert_array_equal(validated.matrix(), np.array([[0.0, 0.5, 1.0], [0.25, 1.0, 0.75]]))


MIXED = FeatureSchema(
    (
        FeatureSpec("x", 0.0, 1.0, 0.5),
        FeatureSpec("plan", kind="categorical", categories=("basic", "pro"), unknown="error"),
        FeatureSpec("y", 0.0, 1.0, 0.5),
        FeatureSpec("age", 0.0, 1.0, 0.5, nullable=True),
    ),
    CLASSES,
)


def test_a_clean_mixed_batch_is_split_into_its_kinds_without_going_row_by_row(
    row_wise_calls: list[int | None],
) -> None:
    batch = [
        {"x": 0.25, "plan": "pro", "y": 1, "age": None},
        {"x": 0, "plan": "basic", "y": 0.5, "age": 0.75},
    ]
    validated = validate_batch(batch, MIXED)
    assert row_wise_calls == []
    assert validated.columns == {"numeric": (0, 2), "categorical:plan": (1,), "numeric_nullable": (3,)}
    np.testing.assert_array_equal(validated.column(0), np.array([0.25, 0.0]))
    assert validated.column(1).tolist() == ["pro", "basic"]
    np.testing.assert_array_equal(validated.column(2), np.array([1.0, 0.5]))
    np.testing.assert_array_equal(validated.column(3), np.array([np.nan, 0.75]))


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"x": 2e39}, "instances[1].x: magnitude must be at most 3.4028235e+38 (float32)"),
        ({"plan": "gold"}, "instances[1].plan"),
        ({"age": math.inf}, "instances[1].age"),
    ],
)
def test_a_bad_value_in_any_kind_of_a_mixed_batch_is_found_column_wise(
    change: dict[str, Any], error: str, row_wise_calls: list[int | None]
) -> None:
    """Each kind's bad rows add up: a fault in the first kind is not cleared by the clean kinds after it."""
    batch = [{"x": 0.5, "plan": "pro", "y": 0.5, "age": 0.5} for _ in range(3)]
    batch[1].update(change)
    with pytest.raises(SchemaError) as caught:
        validate_batch(batch, MIXED)
    assert str(caught.value).startswith(error)
    assert row_wise_calls == [1]


WITH_ID = FeatureSchema(TWO.features, CLASSES, id_column="rid")


def test_ids_of_every_json_type_and_instances_without_one_stay_column_wise(
    row_wise_calls: list[int | None],
) -> None:
    batch: list[dict[str, Any]] = [
        {"x": 0.5, "y": 0.5, "rid": "a"},
        {"x": 0.5, "y": 0.5, "rid": 1},
        {"x": 0.5, "y": 0.5, "rid": 2.5},
        {"x": 0.5, "y": 0.5, "rid": None},
        {"x": 0.5, "y": 0.5},
    ]
    assert validate_batch(batch, WITH_ID).columns == {"numeric": (0, 1)}
    assert row_wise_calls == []


def test_an_unknown_key_beside_the_id_is_refused() -> None:
    with pytest.raises(SchemaError) as caught:
        validate_batch([{"x": 0.5, "y": 0.5}, {"x": 0.5, "y": 0.5, "rid": "a", "zzz": 1}], WITH_ID)
    assert (caught.value.field, caught.value.index) == ("zzz", 1)


def test_a_required_closed_category_may_be_neither_empty_nor_unknown() -> None:
    for value in ("", "gold"):
        batch = [{"x": 0.5, "plan": "pro", "y": 0.5, "age": 0.5} for _ in range(2)]
        batch[1]["plan"] = value
        with pytest.raises(SchemaError, match=r"^instances\[1\]\.plan: "):
            validate_batch(batch, MIXED)


def test_a_column_outside_the_schema_is_a_key_error_naming_it() -> None:
    validated = validate_batch([{"x": 0.5, "y": 0.5}], TWO)
    with pytest.raises(KeyError, match=r"^7$"):
        validated.column(7)


def test_only_an_instance_that_leaves_out_a_nullable_feature_is_completed_for_the_log() -> None:
    batch: list[dict[str, Any]] = [
        {"x": 0.5, "plan": "pro", "y": 0.5, "age": 0.5},
        {"x": 0.5, "plan": "pro", "y": 0.5},  # age left out: logged as null
    ]
    validated = validate_batch(batch, MIXED)
    assert validated.instances[0] is batch[0]  # as sent
    assert validated.instances[1] == {"x": 0.5, "plan": "pro", "y": 0.5, "age": None}
    assert validated.columns == {"numeric": (0, 2), "categorical:plan": (1,), "numeric_nullable": (3,)}
    np.testing.assert_array_equal(validated.column(3), np.array([0.5, np.nan]))


def test_two_features_of_two_kinds_stay_column_wise(row_wise_calls: list[int | None]) -> None:
    schema = FeatureSchema((MIXED.features[0], MIXED.features[1]), CLASSES)
    validated = validate_batch([{"x": 0.5, "plan": "pro"}, {"x": 1, "plan": "basic"}], schema)
    assert row_wise_calls == []
    assert validated.column(1).tolist() == ["pro", "basic"]
