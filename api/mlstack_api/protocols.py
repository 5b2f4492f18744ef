"""Request formats users already speak, turned into the predictor's instances, and answers in kind.

- `mlflow models serve` (`POST /invocations`): JSON `dataframe_split`, `dataframe_records`,
  `instances`, `inputs`, or `text/csv`; the answer is `{"predictions": [label, ...]}`, as the
  pyfunc scoring server returns it for a scikit-learn classifier.
- Open Inference Protocol v2 (`POST /v2/models/{name}/infer`): one named input per feature
  (MLServer's `pd` content type, or none): FP32/FP64 for numbers, BYTES (strings) for categorical
  features; or one `[rows, features]` tensor in schema order (the `np` codec); the answer's
  outputs are `label`, `probabilities` (`[rows, classes]`, class order in its parameters),
  `class_name` and `prediction_id`.

Every format becomes the same list of `{feature: value}` instances and goes through the same
validation, model and prediction log as `/predict`. Decoding only reshapes: value checks are the
schema's, and their errors name the value the way the client sent it (`locate`), e.g.
`dataframe_split.data[3].alcohol` or `inputs.alcohol.data[3]`.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain, repeat
from typing import Any

from mlstack.schema import FLOAT32_MAX, FeatureSchema
from mlstack_api.model import ServedModel
from mlstack_api.predictions import Scored
from mlstack_api.request_validation import RequestError, decode_json, feature_property

Locate = Callable[[int, str], str]
"""(instance index, feature name) -> where that value is in the request as the client wrote it."""

# ------------------------------------------------------------------------- MLflow

MLFLOW_FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
MLFLOW_IGNORED_KEYS = frozenset({"params"})  # the pyfunc scoring server passes these to predict()
CSV = "text/csv"
JSON = "application/json"


@dataclass(frozen=True)
class Decoded:
    """A request's instances and how to name one of its values (or rows) in an error."""

    instances: list[Any]
    locate: Locate
    row: Callable[[int], str]
    extra: dict[str, Any] = field(default_factory=dict)


def _bad(message: str, where: str | None = None, status: int = 400) -> RequestError:
    return RequestError(status, message, where)


def _check_size(rows: int, where: str, max_batch: int) -> None:
    if rows == 0:
        raise _bad(f"{where} has no rows; send at least one", where)
    if rows > max_batch:
        raise _bad(f"{where} has {rows} rows; at most {max_batch} per request (api.max_batch)", where)


def _positional(rows: Sequence[Any], names: list[str], where: Callable[[int], str]) -> list[Any]:
    """Rows given as value lists in the model's feature order -> instances (other rows pass as they are)."""
    instances: list[Any] = []
    for index, row in enumerate(rows):
        if isinstance(row, list):
            if len(row) != len(names):
                raise _bad(
                    f"{where(index)} has {len(row)} values; the model takes {len(names)} features in "
                    f"this order: {names}",
                    where(index),
                )
            instances.append(dict(zip(names, row, strict=True)))
        else:
            instances.append(row)  # an object is checked as an instance; anything else is refused there
    return instances


def decode_mlflow(body: bytes, content_type: str | None, schema: FeatureSchema, max_batch: int) -> Decoded:
    """An `mlflow models serve` scoring request -> instances.

    Raises:
        RequestError: 415 for a content type (or parameter) MLflow's server does not accept either,
            400 for a body that is not one of its formats.
    """
    mime, params = _content_type(content_type)
    if mime == CSV:
        return _decode_csv(body, max_batch, set(schema.categorical_names))
    if mime != JSON:
        raise _bad(
            f"content type {content_type!r} is not supported; send {JSON} "
            f"({', '.join(MLFLOW_FORMATS)}) or {CSV}",
            "Content-Type",
            415,
        )
    del params
    payload = decode_json(body)
    if not isinstance(payload, dict):
        raise _bad(
            f"the body must be a JSON object with one of {list(MLFLOW_FORMATS)} (MLflow's scoring format)",
            "body",
        )
    unknown = [key for key in payload if key not in MLFLOW_FORMATS and key not in MLFLOW_IGNORED_KEYS]
    if unknown:
        raise _bad(f"unknown field {unknown[0]!r}; expected one of {list(MLFLOW_FORMATS)}", str(unknown[0]))
    formats = [key for key in MLFLOW_FORMATS if key in payload]
    if len(formats) != 1:
        raise _bad(f"send exactly one of {list(MLFLOW_FORMATS)}; got {formats or 'none'}", "body")
    (key,) = formats
    value = payload[key]
    names = schema.feature_names
    if key == "dataframe_split":
        return _decode_split(value, names, max_batch)
    if key == "inputs" and isinstance(value, dict):  # columnar: {feature: [values]}
        return _decode_columns(value, "inputs", max_batch)
    if not isinstance(value, list):
        raise _bad(f"'{key}' must be a list of rows", key)
    _check_size(len(value), key, max_batch)
    if key == "dataframe_records":
        return Decoded(value, lambda i, f: f"dataframe_records[{i}].{f}", lambda i: f"dataframe_records[{i}]")
    return Decoded(
        _positional(value, names, lambda i: f"{key}[{i}]"),
        lambda i, f: f"{key}[{i}].{f}",
        lambda i: f"{key}[{i}]",
    )


def _content_type(header: str | None) -> tuple[str, dict[str, str]]:
    if not header:
        raise _bad(f"a Content-Type header is required ({JSON} or {CSV})", "Content-Type", 415)
    mime, *parts = (part.strip() for part in header.split(";"))
    params = {key.strip().lower(): value.strip() for key, _, value in (p.partition("=") for p in parts if p)}
    charset = params.pop("charset", "utf-8").lower()
    if charset != "utf-8":
        raise _bad(f"charset {charset!r} is not supported; send UTF-8", "Content-Type", 415)
    if params:
        raise _bad(f"unknown content type parameters {sorted(params)}", "Content-Type", 415)
    return mime.lower(), params


def _decode_split(value: Any, names: list[str], max_batch: int) -> Decoded:
    where = "dataframe_split"
    if not isinstance(value, dict):
        raise _bad(f"'{where}' must be an object with 'data' (and 'columns', 'index')", where)
    unknown = [key for key in value if key not in ("columns", "data", "index")]
    if unknown:
        raise _bad(
            f"{where}: unknown field {unknown[0]!r}; expected columns, data, index", f"{where}.{unknown[0]}"
        )
    data = value.get("data")
    if not isinstance(data, list):
        raise _bad(f"'{where}.data' must be a list of rows", f"{where}.data")
    index = value.get("index", [])
    if not isinstance(index, list) or not all(
        isinstance(i, int | str) and not isinstance(i, bool) for i in index
    ):
        # pandas' row labels; the answer follows the order of `data`, so they are not used otherwise
        raise _bad(f"'{where}.index' must be a list of row labels (integers or strings)", f"{where}.index")
    _check_size(len(data), f"{where}.data", max_batch)
    columns = value.get("columns")
    if columns is None:
        return Decoded(
            _positional(data, names, lambda i: f"{where}.data[{i}]"),
            lambda i, f: f"{where}.data[{i}].{f}",
            lambda i: f"{where}.data[{i}]",
        )
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise _bad(f"'{where}.columns' must be a list of column names", f"{where}.columns")
    if len(set(columns)) != len(columns):
        raise _bad(f"'{where}.columns' names a column twice", f"{where}.columns")
    instances = []
    for index, row in enumerate(data):
        if not isinstance(row, list) or len(row) != len(columns):
            raise _bad(
                f"{where}.data[{index}] must be a list of {len(columns)} values (one per column)",
                f"{where}.data[{index}]",
            )
        instances.append(dict(zip(columns, row, strict=True)))
    return Decoded(instances, lambda i, f: f"{where}.data[{i}].{f}", lambda i: f"{where}.data[{i}]")


def _decode_columns(columns: Mapping[str, Any], where: str, max_batch: int) -> Decoded:
    """`{feature: [values]}` -> instances (every column the same length)."""
    lengths = set()
    for name, values in columns.items():
        if not isinstance(values, list):
            raise _bad(f"'{where}.{name}' must be a list of values (one per row)", f"{where}.{name}")
        lengths.add(len(values))
    if len(lengths) > 1:
        raise _bad(f"the columns of '{where}' have different lengths: {sorted(lengths)}", where)
    rows = lengths.pop() if lengths else 0
    _check_size(rows, where, max_batch)
    names = list(columns)
    instances = list(map(dict, map(zip, repeat(names), zip(*columns.values(), strict=True))))
    return Decoded(instances, lambda i, f: f"{where}.{f}[{i}]", lambda i: f"{where}: row {i}")


def _csv_value(text: str) -> Any:
    """A CSV cell as JSON would have it: a number when it reads as one, null when empty, else text."""
    if text == "":
        return None
    try:
        return float(text)  # "nan"/"inf" become non-finite floats: the schema refuses them by name
    except ValueError:
        return text  # the schema says "must be a number, got str"


def _csv_text(text: str) -> Any:
    """A CSV cell of a categorical feature: the category as written, null when empty."""
    return None if text == "" else text


def _decode_csv(body: bytes, max_batch: int, categorical: set[str] | frozenset[str] = frozenset()) -> Decoded:
    """`text/csv`: a header row of feature names, then one row per instance (pandas' `to_csv`, no index).

    Cells of categorical features stay text (a code `007` is the category "007"); others read as numbers.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _bad(f"the CSV body is not UTF-8: {exc}", "body") from None
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise _bad(f"the CSV body cannot be read: {exc}", "body") from None
    rows = [row for row in rows if row]  # blank lines (a trailing newline) are not rows
    if not rows:
        raise _bad(
            "the CSV body is empty; send a header row of feature names and one row per instance", "body"
        )
    header, *data = rows
    if len(set(header)) != len(header):
        raise _bad("the CSV header names a column twice", "csv.header")
    _check_size(len(data), "the CSV body", max_batch)
    instances = []
    for index, row in enumerate(data):
        if len(row) != len(header):
            raise _bad(
                f"csv line {index + 2} has {len(row)} values; the header has {len(header)}", f"csv[{index}]"
            )
        readers = [_csv_text if name in categorical else _csv_value for name in header]
        instances.append({name: read(cell) for name, read, cell in zip(header, readers, row, strict=True)})
    return Decoded(instances, lambda i, f: f"csv[{i}].{f}", lambda i: f"csv[{i}]")


def mlflow_response(scored: Scored) -> dict[str, Any]:
    """What `mlflow models serve` answers for a scikit-learn classifier: the predicted labels."""
    return {"predictions": scored.labels}


# ------------------------------------------------------------------------- Open Inference Protocol v2

V2_NUMBER_TYPES = frozenset(
    ("FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64")
)
V2_TEXT_TYPE = "BYTES"  # strings: the categories of categorical features
V2_CONTENT_TYPES = (None, "pd", "np")
V2_OUTPUTS = ("label", "probabilities", "class_name", "prediction_id")


def _flatten(data: Any, where: str) -> list[Any]:
    """A tensor's `data`, row-major: flat, or nested lists (the protocol allows both)."""
    if not isinstance(data, list):
        raise _bad(f"'{where}' must be a list of values", where)
    if any(isinstance(value, list) for value in data):
        flat: list[Any] = []
        for value in data:
            flat.extend(_flatten(value, where) if isinstance(value, list) else [value])
        return flat
    return data


def decode_v2(payload: Any, schema: FeatureSchema, max_batch: int) -> Decoded:
    """An inference request -> instances; `extra` carries the request id and the outputs asked for.

    Raises:
        RequestError: 400 naming the input (or field) that is not a valid inference request.
    """
    if not isinstance(payload, dict):
        raise _bad("the body must be a JSON inference request object with 'inputs'", "body")
    unknown = [key for key in payload if key not in ("id", "parameters", "inputs", "outputs")]
    if unknown:
        raise _bad(f"unknown field {unknown[0]!r}; expected id, parameters, inputs, outputs", str(unknown[0]))
    request_id = payload.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise _bad("'id' must be a string", "id")
    parameters = payload.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise _bad("'parameters' must be an object", "parameters")
    content_type = parameters.get("content_type")
    if content_type not in V2_CONTENT_TYPES:
        raise _bad(
            f"content_type {content_type!r} is not supported; use 'pd' (one input per feature) or 'np'",
            "parameters.content_type",
        )
    outputs = _requested_outputs(payload.get("outputs"))
    inputs = payload.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise _bad("'inputs' must be a non-empty list of tensors", "inputs")
    tensors = [_tensor(tensor, index) for index, tensor in enumerate(inputs)]
    _check_datatypes(inputs, schema)
    names = schema.feature_names
    extra = {"id": request_id, "outputs": outputs}
    if len(tensors) == 1 and tensors[0][0] not in names:
        return _decode_matrix(tensors[0], names, max_batch, extra)
    given = [name for name, _shape, _data in tensors]
    duplicate = sorted({name for name in given if given.count(name) > 1})
    if duplicate:
        raise _bad(f"input {duplicate[0]!r} is sent twice", f"inputs.{duplicate[0]}")
    unknown_inputs = [name for name in given if name not in names]
    if unknown_inputs:
        raise _bad(
            f"unknown input {unknown_inputs[0]!r}; send one input per feature ({names}) "
            "or one [rows, features] tensor",
            f"inputs.{unknown_inputs[0]}",
        )
    missing = [name for name in names if name not in given]
    if missing:
        raise _bad(f"missing input {missing[0]!r} (one input per feature: {names})", f"inputs.{missing[0]}")
    columns: dict[str, list[Any]] = {}
    for name, shape, data in tensors:
        if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
            raise _bad(
                f"input {name!r} has shape {shape}; a feature column is [rows] or [rows, 1]", f"inputs.{name}"
            )
        columns[name] = data
    rows = {len(data) for data in columns.values()}
    if len(rows) > 1:
        raise _bad(f"the inputs have different numbers of rows: {sorted(rows)}", "inputs")
    _check_size(rows.pop(), "inputs", max_batch)
    instances = list(map(dict, map(zip, repeat(given), zip(*columns.values(), strict=True))))
    return Decoded(instances, lambda i, f: f"inputs.{f}.data[{i}]", lambda i: f"inputs: row {i}", extra)


def _check_datatypes(inputs: list[Any], schema: FeatureSchema) -> None:
    """Each feature's input has its type's datatype: numbers for numeric features, BYTES for categories.

    One unnamed `[rows, features]` tensor holds every feature: numbers, or BYTES when the schema has
    categorical features (a JSON tensor may then mix strings and numbers).
    """
    kinds = {f.name: f.is_categorical for f in schema.features}
    for tensor in inputs:
        name, datatype = tensor["name"], tensor["datatype"]
        categorical = kinds.get(name, bool(schema.categorical_names))
        if categorical and datatype != V2_TEXT_TYPE and name in kinds:
            raise _bad(
                f"input {name!r} has datatype {datatype!r}; the feature is categorical: send BYTES (strings)",
                f"inputs.{name}.datatype",
            )
        if not categorical and datatype == V2_TEXT_TYPE:
            raise _bad(
                f"input {name!r} has datatype {datatype!r}; the feature is numeric: send FP32 or FP64",
                f"inputs.{name}.datatype",
            )


def _requested_outputs(outputs: Any) -> list[str]:
    if outputs is None:
        return list(V2_OUTPUTS)
    if not isinstance(outputs, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs
    ):
        raise _bad("'outputs' must be a list of {\"name\": ...} objects", "outputs")
    names = [o["name"] for o in outputs]
    unknown = [name for name in names if name not in V2_OUTPUTS]
    if unknown:
        raise _bad(
            f"unknown output {unknown[0]!r}; the outputs are {list(V2_OUTPUTS)}", f"outputs.{unknown[0]}"
        )
    return names


def _tensor(tensor: Any, index: int) -> tuple[str, list[int], list[Any]]:
    where = f"inputs[{index}]"
    if not isinstance(tensor, dict):
        raise _bad(f"{where} must be a tensor object (name, shape, datatype, data)", where)
    name = tensor.get("name")
    if not isinstance(name, str) or not name:
        raise _bad(f"{where}.name must be a non-empty string", f"{where}.name")
    missing = [key for key in ("shape", "datatype", "data") if key not in tensor]
    if missing:
        raise _bad(f"input {name!r} has no {missing[0]!r}", f"inputs.{name}.{missing[0]}")
    unknown = [key for key in tensor if key not in ("name", "shape", "datatype", "data", "parameters")]
    if unknown:
        raise _bad(f"input {name!r}: unknown field {unknown[0]!r}", f"inputs.{name}.{unknown[0]}")
    datatype = tensor["datatype"]
    if datatype not in V2_NUMBER_TYPES and datatype != V2_TEXT_TYPE:
        raise _bad(
            f"input {name!r} has datatype {datatype!r}; send FP32 or FP64 for numbers, BYTES for categories",
            f"inputs.{name}.datatype",
        )
    shape = tensor["shape"]
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise _bad(f"input {name!r}: shape must be a list of non-negative integers", f"inputs.{name}.shape")
    data = _flatten(tensor["data"], f"inputs.{name}.data")
    if len(data) != math.prod(shape):
        raise _bad(
            f"input {name!r} has {len(data)} values for shape {shape} ({math.prod(shape)} expected)",
            f"inputs.{name}.data",
        )
    return name, shape, data


def _decode_matrix(
    tensor: tuple[str, list[int], list[Any]], names: list[str], max_batch: int, extra: dict[str, Any]
) -> Decoded:
    """One `[rows, features]` tensor, features in the model's order (MLServer's `np` codec)."""
    name, shape, data = tensor
    width = len(names)
    if len(shape) == 1 and shape[0] == width:
        shape = [1, width]  # one row sent as a vector
    if len(shape) != 2 or shape[1] != width:
        raise _bad(
            f"input {name!r} has shape {shape}; send [rows, {width}] (features in this order: {names}) "
            "or one input per feature",
            f"inputs.{name}.shape",
        )
    _check_size(shape[0], f"input {name!r}", max_batch)
    rows = [data[start : start + width] for start in range(0, len(data), width)]
    instances = list(map(dict, map(zip, repeat(names), rows)))
    position = {feature: column for column, feature in enumerate(names)}
    return Decoded(
        instances,
        lambda i, f: f"inputs.{name}.data[{i}][{position.get(f, f)}]",
        lambda i: f"inputs.{name}.data[{i}]",
        extra,
    )


def v2_response(model: ServedModel, scored: Scored, extra: Mapping[str, Any]) -> dict[str, Any]:
    """The inference response: the outputs asked for (all four by default)."""
    rows = len(scored.ids)
    classes = len(model.class_names)
    outputs = {
        "label": {"name": "label", "shape": [rows], "datatype": "INT64", "data": scored.labels},
        "probabilities": {
            "name": "probabilities",
            "shape": [rows, classes],
            "datatype": "FP64",
            "data": list(chain.from_iterable(scored.probabilities)),
            "parameters": {"class_names": list(model.class_names), "class_labels": list(model.class_labels)},
        },
        "class_name": {
            "name": "class_name",
            "shape": [rows],
            "datatype": "BYTES",
            "data": scored.class_names(model),
        },
        "prediction_id": {"name": "prediction_id", "shape": [rows], "datatype": "BYTES", "data": scored.ids},
    }
    response: dict[str, Any] = {
        "model_name": model.name,
        "model_version": model.version,
        "outputs": [outputs[name] for name in extra["outputs"]],
    }
    if extra.get("id") is not None:
        response["id"] = extra["id"]
    return response


def v2_model_metadata(model: ServedModel) -> dict[str, Any]:
    """`GET /v2/models/{name}`: the served version, its inputs (one per feature) and outputs."""
    classes = len(model.class_names)
    return {
        "name": model.name,
        "versions": [model.version],
        "platform": "onnxruntime_onnx" if model.runtime == "onnx" else "sklearn",
        "inputs": [
            {"name": f.name, "datatype": V2_TEXT_TYPE if f.is_categorical else "FP64", "shape": [-1]}
            for f in model.schema.features
        ],
        "outputs": [
            {"name": "label", "datatype": "INT64", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP64", "shape": [-1, classes]},
            {"name": "class_name", "datatype": "BYTES", "shape": [-1]},
            {"name": "prediction_id", "datatype": "BYTES", "shape": [-1]},
        ],
        "parameters": {
            "alias": model.alias,
            "run_id": model.run_id,
            "class_names": list(model.class_names),
            "class_labels": list(model.class_labels),
            "content_type": "pd",
        },
    }


# ------------------------------------------------------------------------- OpenAPI


def _csv_pattern(names: list[str], max_batch: int) -> str:
    number = r"-?[0-9]{1,4}(\.[0-9]{1,4})?"
    row = number + ("," + number) * (len(names) - 1)
    header = ",".join(re.escape(name) for name in names)
    return f"^{header}\n({row}\n){{1,{max_batch}}}$"


def protocol_components(schema: FeatureSchema | None, max_batch: int) -> dict[str, Any]:
    """Component schemas of /invocations and the v2 routes, from the served model's features.

    Used by the fuzz test (schemathesis) to generate requests: positive cases are shaped like real
    ones (one number per feature), negative ones must get a 4xx.
    """
    names = schema.feature_names if schema else []
    labels = [c.label for c in schema.classes] if schema else []
    number = {"type": "number", "minimum": -FLOAT32_MAX, "maximum": FLOAT32_MAX}
    mixed = schema is not None and not schema.all_numeric_required
    # A value of each feature: a number, or (mixed schemas) the feature's own type, categories and null.
    values = {f.name: feature_property(f) if mixed else number for f in schema.features} if schema else {}
    row: dict[str, Any] = {"type": "array", "items": number}
    if mixed:
        row = {"type": "array", "prefixItems": [values[n] for n in names], "items": False}
    if names:
        row.update(minItems=len(names), maxItems=len(names), description=f"values in this order: {names}")
    rows = {"type": "array", "items": row, "minItems": 1, "maxItems": max_batch}
    records = {
        "type": "array",
        "items": {"$ref": "#/components/schemas/Instance"},
        "minItems": 1,
        "maxItems": max_batch,
    }
    either = {
        "type": "array",
        "items": {"anyOf": [{"$ref": "#/components/schemas/Instance"}, row]},
        "minItems": 1,
        "maxItems": max_batch,
    }
    columnar: dict[str, Any] = {
        "type": "object",
        "properties": {
            name: {"type": "array", "items": values[name], "minItems": 1, "maxItems": max_batch}
            for name in names
        },
        "required": names,
        "additionalProperties": False,
    }
    split = {
        "type": "object",
        "properties": {
            "columns": {"type": "array", "items": {"type": "string"}, **({"enum": [names]} if names else {})},
            "data": rows,
            "index": {"type": "array", "items": {"type": "integer"}},
        },
        "required": ["data"],
        "additionalProperties": False,
    }

    def one(key: str, value: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {key: value, "params": {"type": "object", "description": "ignored (as by MLflow)"}},
            "required": [key],
            "additionalProperties": False,
        }

    label = {"type": "integer", **({"enum": labels} if labels else {})}
    tensor = {
        "type": "object",
        "properties": {
            "name": {"type": "string", **({"enum": names} if names else {})},
            "shape": {
                "type": "array",
                "items": {"type": "integer", "minimum": 0},
                "minItems": 1,
                "maxItems": 2,
            },
            "datatype": {"type": "string", "enum": ["FP32", "FP64", *([V2_TEXT_TYPE] if mixed else [])]},
            "data": {
                "type": "array",
                **({} if mixed else {"items": number}),
                "minItems": 1,
                "maxItems": max_batch,
            },
            "parameters": {"type": "object"},
        },
        "required": ["name", "shape", "datatype", "data"],
        "additionalProperties": False,
    }
    output = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "enum": list(V2_OUTPUTS)},
            "shape": {"type": "array", "items": {"type": "integer"}},
            "datatype": {"type": "string"},
            "data": {"type": "array"},
            "parameters": {"type": "object"},
        },
        "required": ["name", "shape", "datatype", "data"],
    }
    error_fields = {
        "detail": {"type": "string"},
        "field": {"type": ["string", "null"], "description": "the offending field, if any"},
    }
    return {
        "MlflowCsv": {
            "type": "string",
            "description": "a header row of the feature names, then one row of values per instance",
            **({"pattern": _csv_pattern(names, max_batch)} if names and not mixed else {}),
        },
        "MlflowRequest": {
            "description": "`mlflow models serve` JSON: pandas split/records, TF-serving instances/inputs",
            "oneOf": [
                one("dataframe_split", split),
                one("dataframe_records", records),
                one("instances", either),
                one("inputs", {"anyOf": [either, columnar]}),
            ],
        },
        "MlflowResponse": {
            "type": "object",
            "properties": {"predictions": {"type": "array", "items": label}},
            "required": ["predictions"],
        },
        "MlflowError": {
            "type": "object",
            "properties": {"error_code": {"type": "string"}, "message": {"type": "string"}, **error_fields},
            "required": ["error_code", "message"],
        },
        "V2InferenceRequest": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "parameters": {
                    "type": "object",
                    "properties": {"content_type": {"type": "string", "enum": ["pd", "np"]}},
                },
                "inputs": {"type": "array", "items": tensor, "minItems": 1},
                "outputs": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"name": {"type": "string", "enum": list(V2_OUTPUTS)}},
                        "required": ["name"],
                    },
                },
            },
            "required": ["inputs"],
            "additionalProperties": False,
        },
        "V2InferenceResponse": {
            "type": "object",
            "properties": {
                "model_name": {"type": "string"},
                "model_version": {"type": "string"},
                "id": {"type": "string"},
                "outputs": {"type": "array", "items": output},
            },
            "required": ["model_name", "model_version", "outputs"],
        },
        "V2ModelMetadata": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "versions": {"type": "array", "items": {"type": "string"}},
                "platform": {"type": "string"},
                "inputs": {"type": "array", "items": {"type": "object"}},
                "outputs": {"type": "array", "items": {"type": "object"}},
            },
            "required": ["name", "platform", "inputs", "outputs"],
        },
        "V2Error": {
            "type": "object",
            "properties": {"error": {"type": "string"}, **error_fields},
            "required": ["error"],
        },
    }
