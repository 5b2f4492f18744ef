"""Request parsing for /predict and its OpenAPI schema, both derived from the model's feature schema."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import pandas as pd

from mlstack.batch_validation import validate_batch
from mlstack.schema import FLOAT32_MAX, UNKNOWN_ERROR, FeatureSchema, FeatureSpec, SchemaError
from mlstack_api.model import ModelInput


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


def parse_instances(payload: Any, schema: FeatureSchema, max_batch: int) -> tuple[list[Any], ModelInput]:
    """Validate `{"instances": [...]}` and return the instances and the model's input.

    The input is a float matrix (features in schema order) when every feature is a required
    number, else the model frame: numbers as float64 (NaN for null), categories as strings.

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
    return model_input(instances, schema)


def _instances_locate(index: int, feature: str) -> str:
    return f"instances[{index}].{feature}"


def model_input(
    instances: list[Any], schema: FeatureSchema, locate: Callable[[int, str], str] = _instances_locate
) -> tuple[list[Any], ModelInput]:
    """Validate instances (from any protocol) into the model's input.

    Returns the instances to log (as sent; one that left out a nullable feature gets null for it)
    and the model's input: one float matrix when every feature is a required number (the fast
    path), else the model frame (numbers as float64 with NaN for missing, categories as strings).

    Raises:
        RequestError: 422 whose message and field name the first bad value where the client put it
            (`locate(instance index, feature)`; `/predict`: `instances[i].feature`).
    """
    try:
        if schema.all_numeric_required:
            return instances, fast_matrix(instances, schema)
        return model_frame(instances, schema)
    except SchemaError as exc:
        field = locate(exc.index, exc.field) if exc.index is not None else exc.field
        raise RequestError(422, f"{field}: {exc.message}", field) from exc


def model_frame(instances: list[Any], schema: FeatureSchema) -> tuple[list[Any], pd.DataFrame]:
    """Validate a batch of a schema with categorical or nullable features, column-wise.

    Returns the instances to log (as sent; one that left out a nullable feature gets null for it)
    and the model frame: numbers as float64 with NaN for missing, categories as strings.

    Raises:
        SchemaError: the first bad value, naming the instance and the feature (the row-wise error).
    """
    validated = validate_batch(instances, schema)
    columns = {spec.name: validated.column(position) for position, spec in enumerate(schema.features)}
    return list(validated.instances), schema.model_frame(pd.DataFrame(columns))


def unknown_categories(batch: ModelInput, schema: FeatureSchema) -> dict[str, int]:
    """Rows per categorical feature whose category the model has not seen (accepted: open vocabulary).

    A closed vocabulary never gets here (validation refused the request), so each count is what
    the encoder turned into "none of the known categories": a drift signal, and a metric.
    """
    if not isinstance(batch, pd.DataFrame):
        return {}
    counts = {}
    for spec in schema.features:
        if spec.is_categorical:
            column = batch[spec.name]
            unseen = int((column.notna() & ~column.isin(spec.categories)).sum())
            if unseen:
                counts[spec.name] = unseen
    return counts


def fast_matrix(instances: list[Any], schema: FeatureSchema) -> np.ndarray:
    """Validate a batch of required numbers into one float64 matrix (features in schema order).

    Column-wise (`mlstack.batch_validation`): a few C-level passes and numpy checks for the whole
    batch; any error is the one `FeatureSchema.validate_instance` raises for the first bad instance.
    float64 keeps the values as sent (sklearn); ONNX casts to its own input type.
    """
    return validate_batch(instances, schema).matrix()


def feature_property(spec: FeatureSpec) -> dict[str, Any]:
    """JSON Schema of one feature's value: its type, range or categories, and whether null is allowed."""
    if spec.is_categorical:
        prop: dict[str, Any] = {"type": ["string", "null"] if spec.nullable else "string"}
        categories: list[Any] = list(spec.categories) + ([None] if spec.nullable else [])
        if spec.unknown == UNKNOWN_ERROR:
            prop["enum"] = categories
            prop["description"] = "one of the model's categories" + (
                "; null when missing" if spec.nullable else ""
            )
        else:
            prop["anyOf"] = [
                {"enum": categories, "description": "the categories seen in training"},
                {
                    "type": "string",
                    "description": "another category: accepted, encoded as none of the known ones",
                },
            ]
            prop["description"] = (
                "a category; unseen ones are accepted and counted (mlops_prediction_unknown_categories_total)"
                + ("; null when missing" if spec.nullable else "")
            )
        if spec.typical is not None:
            prop["example"] = spec.typical
        return prop
    prop = {
        "type": ["number", "null"] if spec.nullable else "number",
        "minimum": -FLOAT32_MAX,
        "maximum": FLOAT32_MAX,
    }
    if spec.minimum is not None and spec.maximum is not None:
        prop["description"] = f"training range {spec.minimum:g} to {spec.maximum:g}"
    if spec.nullable:
        prop["description"] = prop.get("description", "a number") + "; null when missing"
    if spec.typical is not None:
        prop["example"] = spec.typical
    return prop


def instance_schema(schema: FeatureSchema | None) -> dict[str, Any]:
    """JSON Schema of one instance: every feature required (null where allowed), typed, nothing else."""
    if schema is None:  # no model yet: describe the shape without the names
        return {
            "type": "object",
            "description": "Feature values by name (the names come from the served model).",
            "additionalProperties": {"type": "number", "minimum": -FLOAT32_MAX, "maximum": FLOAT32_MAX},
        }
    properties = {f.name: feature_property(f) for f in schema.features}
    if schema.id_column is not None:
        properties[schema.id_column] = {
            "type": ["string", "number", "null"],
            "description": "the row's id (data.id_column): optional, logged, never a model input",
        }
    return {
        "type": "object",
        "properties": properties,
        "required": [f.name for f in schema.features if not f.nullable],  # an absent nullable one is null
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
            "example": {"instances": [schema.typical_instance()] if schema else [{}]},
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
