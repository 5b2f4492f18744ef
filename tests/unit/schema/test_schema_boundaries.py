"""The feature schema's checks one by one, at their boundaries, with the exact error each gives.

The property tests beside this file explore the input space; these pin each rule: the largest float32
passes and the next float64 above it does not, -0.0 is a number, NaN and infinities and integers too
large for a float are refused, and every error names the instance, the feature and the reason.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlstack.feature_types import infer_schema
from mlstack.schema import FLOAT32_MAX, ClassSpec, FeatureSchema, FeatureSpec, SchemaError

SCHEMA = FeatureSchema(
    features=(FeatureSpec("alcohol", 11.0, 15.0, 13.0), FeatureSpec("hue", 0.5, 1.7, 1.0)),
    classes=(ClassSpec(0, "barolo"), ClassSpec(2, "barbera")),
    target="cultivar",
)
JUST_ABOVE = math.nextafter(FLOAT32_MAX, math.inf)


def error_of(instance: Any, index: int | None = 4) -> SchemaError:
    with pytest.raises(SchemaError) as caught:
        SCHEMA.validate_instance(instance, index)
    return caught.value


def assert_error(error: SchemaError, field: str, message: str, index: int | None = 4) -> None:
    assert (error.field, error.message, error.index) == (field, message, index)
    where = f"instances[{index}].{field}" if index is not None else field
    assert str(error) == f"{where}: {message}"


# -- numbers at the float32 boundary ---------------------------------------------------------------


def test_float32_max_is_the_float32_maximum() -> None:
    assert FLOAT32_MAX == float(np.finfo(np.float32).max) == 3.4028234663852886e38


@pytest.mark.parametrize("value", [FLOAT32_MAX, -FLOAT32_MAX, 0.0, -0.0, 5e-324, 2**127, -(2**127)])
def test_values_up_to_float32_max_pass_unchanged(value: float) -> None:
    row = SCHEMA.validate_instance({"hue": 1.0, "alcohol": value})
    assert row == [value, 1.0]
    assert math.copysign(1.0, row[0]) == math.copysign(1.0, value)  # -0.0 stays -0.0
    assert np.isfinite(SCHEMA.to_matrix([{"hue": 1.0, "alcohol": value}])).all()


@pytest.mark.parametrize("value", [JUST_ABOVE, -JUST_ABOVE, 2**128, -(2**128), 1e308])
def test_values_beyond_float32_max_are_refused(value: float) -> None:
    assert_error(
        error_of({"alcohol": 13.0, "hue": value}), "hue", "magnitude must be at most 3.4028235e+38 (float32)"
    )


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nan_and_infinities_are_refused(value: float) -> None:
    assert_error(error_of({"alcohol": value, "hue": 1.0}), "alcohol", "must be finite (not NaN or infinity)")


def test_an_integer_too_large_for_a_float_is_refused() -> None:
    assert_error(error_of({"alcohol": 13.0, "hue": 10**400}), "hue", "is too large for a number")


# -- shape and types -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kind"), [(True, "bool"), (False, "bool"), ("13", "str"), ([13.0], "list"), ({}, "dict")]
)
def test_non_numbers_are_refused_naming_their_type(value: Any, kind: str) -> None:
    assert_error(error_of({"alcohol": value, "hue": 1.0}), "alcohol", f"must be a number, got {kind}")


@pytest.mark.parametrize("instance", [[13.0, 1.0], "alcohol=13", None, 13.0])
def test_a_non_mapping_is_refused(instance: Any) -> None:
    assert_error(error_of(instance), "(instance)", "must be an object of feature values")


def test_a_mapping_other_than_dict_is_accepted() -> None:
    assert SCHEMA.validate_instance(OrderedDict(hue=1.5, alcohol=12)) == [12.0, 1.5]


def test_an_unknown_feature_is_named_before_a_missing_one() -> None:
    error = error_of({"alcohol": 13.0, "colour": 1.0})
    assert_error(error, "colour", "unknown feature; expected ['alcohol', 'hue']")


def test_a_missing_feature_is_named() -> None:
    assert_error(error_of({"hue": 1.0}), "alcohol", "missing feature")
    assert_error(error_of({"alcohol": 13.0}), "hue", "missing feature")


def test_without_an_index_the_error_names_the_feature_alone() -> None:
    assert_error(error_of({"hue": 1.0}, None), "alcohol", "missing feature", None)
    assert_error(
        error_of({"alcohol": 13.0, "hue": math.nan}, 0), "hue", "must be finite (not NaN or infinity)", 0
    )


# -- batches ---------------------------------------------------------------------------------------


def test_to_matrix_is_float32_in_feature_order() -> None:
    matrix = SCHEMA.to_matrix([{"hue": 0.5, "alcohol": 11}, {"alcohol": 15.0, "hue": 1.7}])
    assert matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix, np.array([[11.0, 0.5], [15.0, 1.7]], dtype=np.float32))


def test_to_matrix_names_the_instance_at_fault() -> None:
    with pytest.raises(SchemaError) as caught:
        SCHEMA.to_matrix(
            [{"alcohol": 13.0, "hue": 1.0}, {"alcohol": 13.0, "hue": 1.0}, {"alcohol": 1e39, "hue": 1}]
        )
    assert str(caught.value) == "instances[2].alcohol: magnitude must be at most 3.4028235e+38 (float32)"


def test_an_empty_batch_is_refused() -> None:
    with pytest.raises(SchemaError) as caught:
        SCHEMA.to_matrix([])
    assert (caught.value.field, caught.value.message, caught.value.index) == (
        "instances", "must contain at least one instance", None,
    )  # fmt: skip


# -- the schema itself -----------------------------------------------------------------------------


def test_class_names_by_label_and_unknown_labels_as_numbers() -> None:
    assert SCHEMA.class_name(0) == "barolo" and SCHEMA.class_name(2) == "barbera"
    assert SCHEMA.class_name(1) == "1"


def test_derived_from_training_data() -> None:
    features = pd.DataFrame({"alcohol": [11.0, 13.0, 14.0, 15.0], "hue": [1.5, 0.5, 1.7, 1.0]})
    target = pd.Series([2, 0, 1, 0])
    schema = infer_schema(features, target, ["barolo", "grignolino"], "cultivar")
    assert schema == FeatureSchema(
        features=(FeatureSpec("alcohol", 11.0, 15.0, 13.5), FeatureSpec("hue", 0.5, 1.7, 1.25)),
        # label 2 has no name in the list (it has 2 names): its name is the label itself
        classes=(ClassSpec(0, "barolo"), ClassSpec(1, "grignolino"), ClassSpec(2, "2")),
        target="cultivar",
    )


def test_round_trips_through_its_dict_and_defaults_the_target_name() -> None:
    data = SCHEMA.to_dict()
    assert FeatureSchema.from_dict(data) == SCHEMA
    del data["target"]
    assert FeatureSchema.from_dict(data).target == "target"
