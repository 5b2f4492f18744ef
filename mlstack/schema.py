"""The feature schema: each feature's type (numeric or categorical), range or categories, whether it
may be missing, and the classes; derived from training data and stored with the model.

Schemas logged before feature types existed (numeric features only, no missing values) load as
such: a feature without `type` is numeric and a feature without `nullable` is required.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final, Literal

import numpy as np
import pandas as pd

from mlstack.contract import METADATA_FEATURE_SCHEMA

# The models run on float32 (ONNX Runtime's input type): a larger magnitude would become infinity.
FLOAT32_MAX = float(np.finfo(np.float32).max)
NOT_FINITE = "must be finite (not NaN or infinity)"
BEYOND_FLOAT32 = f"magnitude must be at most {FLOAT32_MAX:.8g} (float32)"

FeatureKind = Literal["numeric", "categorical"]
NUMERIC: Final[FeatureKind] = "numeric"
CATEGORICAL: Final[FeatureKind] = "categorical"
UnknownPolicy = Literal["ignore", "error"]
# A categorical value the model has not seen: "ignore" = the encoder outputs all zeros for it (the
# predictor accepts it and counts it); "error" = the vocabulary is closed (the predictor answers 422).
UNKNOWN_IGNORE: Final[UnknownPolicy] = "ignore"
UNKNOWN_ERROR: Final[UnknownPolicy] = "error"
SCHEMA_FORMAT: Final = 2  # 1: numeric features only (no `type`); 2: feature types


class SchemaError(ValueError):
    """An instance does not match the feature schema; `field` names the culprit."""

    def __init__(self, field: str, message: str, index: int | None = None) -> None:
        self.field = field
        self.index = index
        self.message = message
        where = f"instances[{index}].{field}" if index is not None else field
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class FeatureSpec:
    """One input feature: numeric with the range seen in training, or categorical with its categories."""

    name: str
    minimum: float | None = None  # numeric: the training range (None when every value was missing)
    maximum: float | None = None
    typical: float | str | None = None  # numeric: median; categorical: most frequent (the form's default)
    kind: FeatureKind = NUMERIC
    categories: tuple[str, ...] = ()  # categorical: the categories seen in training (or declared)
    nullable: bool = False  # may the value be missing (null)
    unknown: UnknownPolicy = UNKNOWN_IGNORE  # categorical: what a category outside `categories` does

    @property
    def is_categorical(self) -> bool:
        return self.kind == CATEGORICAL

    def to_dict(self) -> dict[str, Any]:
        if self.is_categorical:
            return {
                "name": self.name,
                "type": CATEGORICAL,
                "categories": list(self.categories),
                "typical": self.typical,
                "nullable": self.nullable,
                "unknown": self.unknown,
            }
        return {
            "name": self.name,
            "type": NUMERIC,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "typical": self.typical,
            "nullable": self.nullable,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        """Read both formats: without `type` (format 1) the feature is numeric and required."""
        kind = data.get("type", NUMERIC)
        if kind not in (NUMERIC, CATEGORICAL):
            raise ValueError(f"feature {data.get('name')!r}: unknown type {kind!r}")
        unknown = data.get("unknown", UNKNOWN_IGNORE)
        if unknown not in (UNKNOWN_IGNORE, UNKNOWN_ERROR):
            raise ValueError(
                f"feature {data.get('name')!r}: unknown must be ignore or error, not {unknown!r}"
            )
        if kind == CATEGORICAL:
            typical = data.get("typical")
            return cls(
                name=str(data["name"]),
                typical=None if typical is None else str(typical),
                kind=CATEGORICAL,
                categories=tuple(str(c) for c in data["categories"]),
                nullable=bool(data.get("nullable", False)),
                unknown=unknown,
            )
        return cls(
            name=str(data["name"]),
            minimum=_optional_float(data.get("minimum")),
            maximum=_optional_float(data.get("maximum")),
            typical=_optional_float(data.get("typical")),
            nullable=bool(data.get("nullable", False)),
        )

    def check_value(self, value: Any, index: int | None = None) -> float | str | None:
        """One request value of this feature, checked: a float, a category string, or None (missing).

        Raises:
            SchemaError: wrong type, missing where not allowed, non-finite or beyond float32, or an
                unknown category of a closed vocabulary.
        """
        if value is None or (self.is_categorical and value == ""):
            if not self.nullable:
                raise SchemaError(self.name, "is required (missing values are not allowed)", index)
            return None
        if self.is_categorical:
            if not isinstance(value, str):
                raise SchemaError(
                    self.name, f"must be a string (a category), got {type(value).__name__}", index
                )
            if self.unknown == UNKNOWN_ERROR and value not in self.categories:
                raise SchemaError(
                    self.name, f"unknown category {value!r}; expected one of {list(self.categories)}", index
                )
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SchemaError(self.name, f"must be a number, got {type(value).__name__}", index)
        try:
            number = float(value)
        except OverflowError:
            raise SchemaError(self.name, "is too large for a number", index) from None
        if not math.isfinite(number):
            raise SchemaError(self.name, NOT_FINITE, index)
        if abs(number) > FLOAT32_MAX:
            raise SchemaError(self.name, BEYOND_FLOAT32, index)
        return number


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class ClassSpec:
    """One target class: the label the model predicts and its human name."""

    label: int
    name: str


@dataclass(frozen=True)
class FeatureSchema:
    """What the model takes and what it predicts."""

    features: tuple[FeatureSpec, ...]
    classes: tuple[ClassSpec, ...]
    target: str = "target"
    id_column: str | None = None  # a row identifier requests may send; never a model input
    _by_name: dict[str, FeatureSpec] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {f.name: f for f in self.features})

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def feature(self, name: str) -> FeatureSpec:
        """The spec of feature `name` (KeyError when there is none)."""
        return self._by_name[name]

    @property
    def numeric_names(self) -> list[str]:
        return [f.name for f in self.features if not f.is_categorical]

    @property
    def categorical_names(self) -> list[str]:
        return [f.name for f in self.features if f.is_categorical]

    @property
    def all_numeric_required(self) -> bool:
        """True for the schemas of format 1: every feature a number, none missing (one float matrix)."""
        return not any(f.is_categorical or f.nullable for f in self.features)

    def typical_instance(self) -> dict[str, Any]:
        """One plausible request: every feature at its typical value (the smoke test, the form)."""
        return {f.name: f.typical for f in self.features}

    def class_name(self, label: int) -> str:
        for spec in self.classes:
            if spec.label == label:
                return spec.name
        return str(label)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": SCHEMA_FORMAT,
            "target": self.target,
            "id_column": self.id_column,
            "features": [f.to_dict() for f in self.features],
            "classes": [asdict(c) for c in self.classes],
        }

    @classmethod
    def from_model_metadata(cls, metadata: Mapping[str, Any] | None) -> FeatureSchema | None:
        """The schema mlstack logs in a model's metadata; None for a model logged without one.

        Raises:
            KeyError, TypeError, ValueError: the metadata holds a malformed schema.
        """
        raw = (metadata or {}).get(METADATA_FEATURE_SCHEMA)
        return None if raw is None else cls.from_dict(raw)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSchema:
        id_column = data.get("id_column")
        return cls(
            features=tuple(FeatureSpec.from_dict(f) for f in data["features"]),
            classes=tuple(ClassSpec(**c) for c in data["classes"]),
            target=str(data.get("target", "target")),
            id_column=None if id_column is None else str(id_column),
        )

    def validate_instance(self, instance: Any, index: int | None = None) -> list[Any]:
        """Check one `{feature: value}` mapping and return its values in feature order.

        Numbers come back as floats, categories as strings, missing values (null, or "" for a
        categorical feature, or no key at all for a nullable feature) as None. The id column, when
        the schema has one, may be sent and is left out.

        Raises:
            SchemaError: a missing, unknown, mistyped, NaN or infinite value, a null where the
                feature is required, or an unknown category where the vocabulary is closed.
        """
        if not isinstance(instance, Mapping):
            raise SchemaError("(instance)", "must be an object of feature values", index)
        names = self.feature_names
        unknown = [k for k in instance if k not in self._by_name and k != self.id_column]
        if unknown:
            raise SchemaError(str(unknown[0]), f"unknown feature; expected {names}", index)
        if self.id_column is not None and self.id_column in instance:
            identifier = instance[self.id_column]
            if isinstance(identifier, bool) or not isinstance(identifier, str | int | float | None):
                raise SchemaError(self.id_column, "the id must be a string, a number or null", index)
        row: list[Any] = []
        for spec in self.features:
            if spec.name in instance:
                row.append(spec.check_value(instance[spec.name], index))
            elif spec.nullable:
                row.append(None)
            else:
                raise SchemaError(spec.name, "missing feature", index)
        return row

    def check_values(self, matrix: np.ndarray) -> None:
        """The finiteness and float32 checks of `validate_instance`, vectorised over a batch.

        `matrix` holds the batch's numbers in feature order (float64, one row per instance).

        Raises:
            SchemaError: for the first offending value in row order, as `validate_instance` would.
        """
        bad = invalid_numbers(matrix)
        if bad.any():
            index, col = (int(i) for i in np.argwhere(bad)[0])
            message = NOT_FINITE if not math.isfinite(float(matrix[index, col])) else BEYOND_FLOAT32
            raise SchemaError(self.features[col].name, message, index)

    def to_matrix(self, instances: Sequence[Any]) -> np.ndarray:
        """Validate a batch of a numeric schema: a float32 matrix in feature order (NaN = missing)."""
        if not instances:
            raise SchemaError("instances", "must contain at least one instance")
        if self.categorical_names:
            raise TypeError("a schema with categorical features has no matrix form; use to_frame")
        rows = [self.validate_instance(inst, i) for i, inst in enumerate(instances)]
        return np.asarray(rows, dtype=np.float32)

    def to_frame(self, instances: Sequence[Any]) -> pd.DataFrame:
        """Validate a batch and return it as the model's input frame (see `model_frame`)."""
        if not instances:
            raise SchemaError("instances", "must contain at least one instance")
        rows = [self.validate_instance(inst, i) for i, inst in enumerate(instances)]
        return self.model_frame(pd.DataFrame(rows, columns=self.feature_names))

    def model_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The columns a model takes, typed the way it was trained: numeric columns float64 with NaN
        for missing, categorical columns object holding category strings with NaN for missing.

        Assumes the values were validated (a numeric column's text that does not parse becomes NaN).
        """
        typed = {}
        for spec in self.features:
            column = frame[spec.name]
            typed[spec.name] = category_text(column) if spec.is_categorical else numeric_values(column)
        return pd.DataFrame(typed, index=frame.index)


def invalid_numbers(values: np.ndarray) -> np.ndarray:
    """Where `validate_instance` refuses a number, element-wise: NaN, infinity or beyond float32.

    One comparison covers all three (NaN compares false, infinity exceeds the bound); the batch
    validators use it, and the messages stay those of `FeatureSpec.check_value`.
    """
    within: np.ndarray = np.abs(values) <= FLOAT32_MAX
    invalid: np.ndarray = np.logical_not(within)
    return invalid


def numeric_values(column: pd.Series) -> pd.Series:
    """A column as float64; missing and unparseable values become NaN."""
    if pd.api.types.is_bool_dtype(column):
        return column.astype("float64")
    return pd.to_numeric(column, errors="coerce").astype("float64")


def category_text(column: pd.Series) -> pd.Series:
    """A column as category strings (object dtype), NaN for missing ("" counts as missing).

    Integral numbers are written without a decimal point, so a code read as 7.0 is the category "7".
    """

    def text(value: Any) -> Any:
        if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
            return np.nan
        if isinstance(value, str):
            return value if value != "" else np.nan
        if isinstance(value, bool | np.bool_):
            return str(bool(value))
        if isinstance(value, float | np.floating) and float(value).is_integer():
            return str(int(value))
        return str(value)

    return pd.Series([text(v) for v in column.tolist()], index=column.index, dtype=object)
