"""The /predict request validator at its boundaries, without the app around it.

float32 is the model's input type (ONNX): the largest finite float32 passes, the next float64 above
it is refused with a 422 naming the field (a float64 bound would let it through to become infinity).
Also pinned: -0.0, NaN and infinities, integers too large for a float, the batch-size limit, and which
instance and feature an error names when several are wrong.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlstack_api.request_validation import (
    RequestError,
    decode_json,
    fast_matrix,
    model_input,
    parse_instances,
    unknown_categories,
)

from mlstack.schema import FLOAT32_MAX, ClassSpec, FeatureSchema, FeatureSpec

SCHEMA = FeatureSchema(
    features=(FeatureSpec("alcohol", 11.0, 15.0, 13.0), FeatureSpec("hue", 0.5, 1.7, 1.0)),
    classes=(ClassSpec(0, "class_0"), ClassSpec(1, "class_1")),
)
MAX_BATCH = 3
JUST_ABOVE = math.nextafter(FLOAT32_MAX, math.inf)


def parse(payload: Any) -> tuple[list[Any], np.ndarray]:
    return parse_instances(payload, SCHEMA, MAX_BATCH)


def refused(payload: Any) -> RequestError:
    with pytest.raises(RequestError) as caught:
        parse(payload)
    return caught.value


def row(alcohol: Any = 13.0, hue: Any = 1.0) -> dict[str, Any]:
    return {"alcohol": alcohol, "hue": hue}


def test_float32_max_is_the_largest_value_accepted() -> None:
    assert FLOAT32_MAX == float(np.finfo(np.float32).max) == 3.4028234663852886e38
    _, matrix = parse({"instances": [row(FLOAT32_MAX, -FLOAT32_MAX)]})
    assert matrix.tolist() == [[FLOAT32_MAX, -FLOAT32_MAX]]
    assert np.isfinite(matrix.astype(np.float32)).all()


@pytest.mark.parametrize("value", [JUST_ABOVE, -JUST_ABOVE, 1e39, -1e300, 2**128, -(2**128)])
def test_beyond_float32_max_is_a_422_naming_the_field(value: float) -> None:
    error = refused({"instances": [row(), row(hue=value)]})
    assert error.status == 422 and error.field == "instances[1].hue"
    assert error.message == "instances[1].hue: magnitude must be at most 3.4028235e+38 (float32)"


def test_the_first_offending_value_is_named_row_by_row() -> None:
    error = refused({"instances": [row(), row(hue=1e39), row(alcohol=1e39)]})
    assert error.field == "instances[1].hue"
    error = refused({"instances": [row(), row(alcohol=1e39, hue=1e39)]})
    assert error.field == "instances[1].alcohol"


def test_negative_zero_is_a_value_like_any_other() -> None:
    _, matrix = parse({"instances": [row(-0.0, 0.0)]})
    assert matrix.tolist() == [[0.0, 0.0]]
    assert math.copysign(1.0, matrix[0, 0]) == -1.0  # the sign is kept, as sent


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_are_a_422_naming_the_field(value: float) -> None:
    error = refused({"instances": [row(), row(alcohol=value)]})
    assert error.status == 422 and error.field == "instances[1].alcohol"
    assert error.message == "instances[1].alcohol: must be finite (not NaN or infinity)"


def test_an_integer_too_large_for_a_float_is_a_422_naming_the_field() -> None:
    error = refused({"instances": [row(), row(hue=10**400)]})
    assert error.status == 422 and error.field == "instances[1].hue"
    assert error.message == "instances[1].hue: is too large for a number"


@pytest.mark.parametrize(("value", "kind"), [(True, "bool"), ("13", "str"), ({}, "dict"), ([1.0], "list")])
def test_a_non_number_is_a_422_naming_the_field_and_its_type(value: Any, kind: str) -> None:
    error = refused({"instances": [row(alcohol=value)]})
    assert error.status == 422 and error.field == "instances[0].alcohol"
    assert error.message == f"instances[0].alcohol: must be a number, got {kind}"


def test_a_null_is_a_missing_value_which_a_required_feature_refuses() -> None:
    error = refused({"instances": [row(), row(hue=None)]})
    assert (error.status, error.field) == (422, "instances[1].hue")
    assert error.message == "instances[1].hue: is required (missing values are not allowed)"


def test_unknown_and_missing_features_are_named() -> None:
    unknown = refused({"instances": [{**row(), "colour": 1.0}]})
    assert unknown.field == "instances[0].colour"
    assert unknown.message == "instances[0].colour: unknown feature; expected ['alcohol', 'hue']"
    missing = refused({"instances": [row(), {"alcohol": 12.0}]})
    assert missing.field == "instances[1].hue" and missing.message == "instances[1].hue: missing feature"
    not_an_object = refused({"instances": [row(), [12.0, 1.0]]})
    assert not_an_object.field == "instances[1].(instance)"


def test_values_come_back_in_schema_order_as_float64() -> None:
    instances = [{"hue": 0.75, "alcohol": 12}, row(13.5, 1.25)]
    parsed, matrix = parse({"instances": instances})
    assert parsed is instances
    assert matrix.dtype == np.float64 and matrix.tolist() == [[12.0, 0.75], [13.5, 1.25]]
    # A float64 value that float32 would round is kept as sent (sklearn sees it unchanged).
    _, precise = parse({"instances": [row(0.1)]})
    assert precise[0, 0] == 0.1


def test_the_batch_limit_is_inclusive() -> None:
    parsed, matrix = parse({"instances": [row()] * MAX_BATCH})
    assert len(parsed) == MAX_BATCH and matrix.shape == (MAX_BATCH, 2)
    error = refused({"instances": [row()] * (MAX_BATCH + 1)})
    assert (error.status, error.field) == (422, "instances")
    assert error.message == "'instances' has 4 items; at most 3 per request"


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        ([row()], "body", 'body must be a JSON object like {"instances": [{...}]}'),
        (
            {"instances": [row()], "extra": 1},
            "extra",
            "unknown top-level field 'extra'; only 'instances' is allowed",
        ),
        ({}, "instances", "missing field 'instances' (a list of feature objects)"),
        ({"instances": None}, "instances", "missing field 'instances' (a list of feature objects)"),
        ({"instances": row()}, "instances", "'instances' must be a list of feature objects"),
        ({"instances": []}, "instances", "'instances' must contain at least one instance"),
    ],
)
def test_the_envelope_is_checked_first(payload: Any, field: str, message: str) -> None:
    error = refused(payload)
    assert (error.status, error.field, error.message) == (422, field, message)
    assert error.body() == {"detail": message, "field": field}
    assert str(error) == message  # what a log line or traceback shows


def test_fast_matrix_agrees_with_the_schema_on_well_formed_input() -> None:
    instances = [row(11.0, 0.5), row(15.0, 1.7)]
    np.testing.assert_array_equal(
        fast_matrix(instances, SCHEMA).astype(np.float32), SCHEMA.to_matrix(instances)
    )


def test_decode_json_accepts_nan_literals_so_the_validator_can_name_the_field() -> None:
    assert decode_json(b'{"instances": [{"alcohol": 1, "hue": 2.5}]}') == {"instances": [row(1, 2.5)]}
    decoded = decode_json(b'{"instances": [{"alcohol": NaN, "hue": Infinity}]}')
    assert math.isnan(decoded["instances"][0]["alcohol"]) and decoded["instances"][0]["hue"] == math.inf
    assert refused(decoded).field == "instances[0].alcohol"


@pytest.mark.parametrize("body", [b"", b"{", b'{"instances": [}', b"[" * 100_000])
def test_decode_json_refuses_broken_json_with_a_400(body: bytes) -> None:
    with pytest.raises(RequestError) as caught:
        decode_json(body)
    assert caught.value.status == 400 and caught.value.field is None
    assert caught.value.message.startswith("request body is not valid JSON: ")


NULLABLE = FeatureSchema(
    features=(FeatureSpec("alcohol", 11.0, 15.0, 13.0), FeatureSpec("hue", 0.5, 1.7, 1.0, nullable=True)),
    classes=SCHEMA.classes,
)


def test_a_schema_with_nullable_features_is_validated_into_a_float64_frame_with_nan() -> None:
    _, frame = parse_instances({"instances": [row(12, None), row(13.5, 0.75)]}, NULLABLE, MAX_BATCH)
    assert isinstance(frame, pd.DataFrame) and list(frame.columns) == ["alcohol", "hue"]
    assert list(frame.dtypes) == [np.float64, np.float64]
    matrix = frame.to_numpy()
    assert matrix[0, 0] == 12.0 and math.isnan(matrix[0, 1]) and matrix[1].tolist() == [13.5, 0.75]
    with pytest.raises(RequestError) as caught:
        parse_instances({"instances": [row(), row(hue=1e39)]}, NULLABLE, MAX_BATCH)
    assert (caught.value.status, caught.value.field) == (422, "instances[1].hue")
    assert caught.value.message == "instances[1].hue: magnitude must be at most 3.4028235e+38 (float32)"


def test_model_input_names_the_field_where_the_protocol_put_it() -> None:
    def locate(index: int, feature: str) -> str:
        return f"inputs.{feature}[{index}]"

    with pytest.raises(RequestError) as caught:
        model_input([row(), row(alcohol=math.inf)], SCHEMA, locate)
    assert (caught.value.status, caught.value.field) == (422, "inputs.alcohol[1]")
    assert caught.value.message == "inputs.alcohol[1]: must be finite (not NaN or infinity)"
    with pytest.raises(RequestError) as empty:
        model_input([], SCHEMA, locate)
    assert (empty.value.status, empty.value.field) == (422, "instances")
    assert empty.value.message == "instances: must contain at least one instance"
    instances = [row(12, 0.5)]
    logged, matrix = model_input(instances, SCHEMA)
    assert logged is instances
    np.testing.assert_array_equal(matrix, np.array([[12.0, 0.5]]))


def test_unknown_categories_counts_the_unseen_categories_per_open_feature() -> None:
    schema = FeatureSchema(
        (
            FeatureSpec("alcohol", 11.0, 15.0, 13.0),
            FeatureSpec("region", kind="categorical", categories=("eu", "us")),
            FeatureSpec("plan", kind="categorical", categories=("basic",), nullable=True),
        ),
        (ClassSpec(0, "a"),),
    )
    frame = pd.DataFrame(
        {"alcohol": [12.0, 13.0, 14.0], "region": ["eu", "asia", "mars"], "plan": ["basic", None, "gold"]}
    )
    assert unknown_categories(frame, schema) == {"region": 2, "plan": 1}
    assert unknown_categories(frame.iloc[:1], schema) == {}  # nothing unseen: no entry
    assert unknown_categories(np.array([[12.0]]), SCHEMA) == {}  # a numeric matrix has no categories
