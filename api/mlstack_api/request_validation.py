"""Request parsing for /predict and its OpenAPI schema, both derived from the model's feature schema."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson

from mlstack.batch_validation import supports, validate_batch
from mlstack.schema import FLOAT32_MAX, FeatureSchema, SchemaError


class RequestError(Exception):
    """A client error: HTTP status, a readable message and the field it is about."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field

    def body(self) -> dict[str, Any]:
        return {"detail": self.message, "field": self.field}


def decode_json(body: bytes) -> Any:
    """Parse a JSON body; NaN/Infinity literals get through so the validator can name the field."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        try:
            # The stdlib accepts NaN and Infinity, which orjson rejects: parse them so the
            # error names the offending feature instead of a byte offset.
            return json.loads(body)
        except (ValueError, RecursionError):
            raise RequestError(400, f"request body is not valid JSON: {exc}") from exc


def parse_instances(payload: Any, schema: FeatureSchema, max_batch: int) -> tuple[list[Any], np.ndarray]:
    """Validate `{"instances": [...]}` and return the instances and their matrix (features in schema order).

    Raises:
        RequestError: 422 naming the field that is wrong.
    """
    if not isinstance(payload, dict):
        raise RequestError(422, 'body must be a JSON object like {"instances": [{...}]}', "body")
    extra = [key for key in payload if key != "instances"]
    if extra:
        raise RequestError(
            422, f"unknown top-level field {extra[0]!r}; only 'instances' is allowed", extra[0]
        )
    instances = payload.get("instances")
    if instances is None:
        raise RequestError(422, "missing field 'instances' (a list of feature objects)", "instances")
    if not isinstance(instances, list):
        raise RequestError(422, "'instances' must be a list of feature objects", "instances")
    if not instances:
        raise RequestError(422, "'instances' must contain at least one instance", "instances")
    if len(instances) > max_batch:
        raise RequestError(
            422, f"'instances' has {len(instances)} items; at most {max_batch} per request", "instances"
        )
    return instances, model_input(instances, schema)


def _instances_locate(index: int, feature: str) -> str:
    return f"instances[{index}].{feature}"


def model_input(
    instances: list[Any], schema: FeatureSchema, locate: Callable[[int, str], str] = _instances_locate
) -> np.ndarray:
    """Validate instances (from any protocol) into the model's input.

    Raises:
        RequestError: 422 whose message and field name the first bad value where the client put it
            (`locate(instance index, feature)`; `/predict`: `instances[i].feature`).
    """
    try:
        return fast_matrix(instances, schema)
    except SchemaError as exc:
        field = locate(exc.index, exc.field) if exc.index is not None else exc.field
        raise RequestError(422, f"{field}: {exc.message}", field) from exc
    except OverflowError as exc:  # an integer literal too large for a float
        field = _overflowing_field(instances)
        raise RequestError(422, f"{field}: number is too large", field) from exc


def fast_matrix(instances: list[Any], schema: FeatureSchema) -> np.ndarray:
    """Validate a batch of required numbers into one float64 matrix (features in schema order).

    Column-wise (`mlstack.batch_validation`): a few C-level passes and numpy checks for the whole
    batch; any error is the one `FeatureSchema.validate_instance` raises for the first bad instance.
    float64 keeps the values as sent (sklearn); ONNX casts to its own input type.
    """
    if supports(schema):
        return validate_batch(instances, schema).matrix()
    rows = [schema.validate_instance(instance, index) for index, instance in enumerate(instances)]
    return np.asarray(rows, dtype=np.float64)


def _overflowing_field(instances: list[Any]) -> str:
    for index, instance in enumerate(instances):
        for name, value in instance.items():
            try:
                float(value)
            except OverflowError:
                return f"instances[{index}].{name}"
            except (TypeError, ValueError):
                continue
    return "instances"


def instance_schema(schema: FeatureSchema | None) -> dict[str, Any]:
    """JSON Schema of one instance: every feature required, numbers only, nothing else."""
    if schema is None:  # no model yet: describe the shape without the names
        return {
            "type": "object",
            "description": "Feature values by name (the names come from the served model).",
            "additionalProperties": {"type": "number", "minimum": -FLOAT32_MAX, "maximum": FLOAT32_MAX},
        }
    return {
        "type": "object",
        "properties": {
            f.name: {
                "type": "number",
                "minimum": -FLOAT32_MAX,
                "maximum": FLOAT32_MAX,
                "description": f"training range {f.minimum:g} to {f.maximum:g}",
                "example": f.typical,
            }
            for f in schema.features
        },
        "required": schema.feature_names,
        "additionalProperties": False,
    }


def openapi_components(schema: FeatureSchema | None, max_batch: int) -> dict[str, Any]:
    """Component schemas for /predict: request, response and error bodies."""
    class_names = [c.name for c in schema.classes] if schema else []
    class_name_schema: dict[str, Any] = {"type": "string"}
    if class_names:
        class_name_schema["enum"] = class_names
    probabilities: dict[str, Any] = {"type": "object", "additionalProperties": {"type": "number"}}
    if class_names:
        probabilities = {
            "type": "object",
            "properties": {name: {"type": "number"} for name in class_names},
            "required": class_names,
            "additionalProperties": False,
        }
    return {
        "Instance": instance_schema(schema),
        "PredictRequest": {
            "type": "object",
            "properties": {
                "instances": {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/Instance"},
                    "minItems": 1,
                    "maxItems": max_batch,
                }
            },
            "required": ["instances"],
            "additionalProperties": False,
            "example": {"instances": [{f.name: f.typical for f in schema.features}] if schema else [{}]},
        },
        "Prediction": {
            "type": "object",
            "properties": {
                "id": {"type": "string", "description": "prediction id, for POST /feedback"},
                "label": {"type": "integer"},
                "class_name": class_name_schema,
                "probabilities": probabilities,
            },
            "required": ["id", "label", "class_name", "probabilities"],
        },
        "ModelBlock": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "version": {"type": "string"},
                "alias": {"type": "string"},
                "run_id": {"type": "string"},
                "runtime": {"type": "string", "enum": ["onnx", "sklearn"]},
            },
            "required": ["name", "version", "alias", "run_id", "runtime"],
        },
        "PredictResponse": {
            "type": "object",
            "properties": {
                "predictions": {"type": "array", "items": {"$ref": "#/components/schemas/Prediction"}},
                "model": {"$ref": "#/components/schemas/ModelBlock"},
            },
            "required": ["predictions", "model"],
        },
        "Error": {
            "type": "object",
            "properties": {
                "detail": {"type": "string", "description": "what is wrong and what to do"},
                "field": {"type": ["string", "null"], "description": "the offending field, if any"},
            },
            "required": ["detail"],
        },
    }
