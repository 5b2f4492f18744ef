"""The feature schema: names, ranges and classes, derived from training data and stored with the model."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlstack.contract import METADATA_FEATURE_SCHEMA

# The models run on float32 (ONNX Runtime's input type): a larger magnitude would become infinity.
FLOAT32_MAX = float(np.finfo(np.float32).max)
NOT_FINITE = "must be finite (not NaN or infinity)"
BEYOND_FLOAT32 = f"magnitude must be at most {FLOAT32_MAX:.8g} (float32)"


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
    """One numeric input feature and the range seen in training."""

    name: str
    minimum: float
    maximum: float
    typical: float  # median of the training data: the form's pre-filled value


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

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def class_name(self, label: int) -> str:
        for spec in self.classes:
            if spec.label == label:
                return spec.name
        return str(label)

    @classmethod
    def from_training_data(
        cls, features: pd.DataFrame, target: pd.Series, class_names: Sequence[str], target_name: str
    ) -> FeatureSchema:
        """Derive the schema from the training frame."""
        specs = tuple(
            FeatureSpec(
                name=str(col),
                minimum=float(features[col].min()),
                maximum=float(features[col].max()),
                typical=float(features[col].median()),
            )
            for col in features.columns
        )
        labels = sorted(int(v) for v in pd.unique(target))
        classes = tuple(
            ClassSpec(label=lab, name=class_names[lab] if lab < len(class_names) else str(lab))
            for lab in labels
        )
        return cls(features=specs, classes=classes, target=target_name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "features": [asdict(f) for f in self.features],
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
        return cls(
            features=tuple(FeatureSpec(**f) for f in data["features"]),
            classes=tuple(ClassSpec(**c) for c in data["classes"]),
            target=str(data.get("target", "target")),
        )

    def validate_instance(self, instance: Any, index: int | None = None) -> list[float]:
        """Check one `{feature: number}` mapping and return its values in feature order.

        Raises:
            SchemaError: a missing, unknown, non-numeric, NaN or infinite value.
        """
        if not isinstance(instance, Mapping):
            raise SchemaError("(instance)", "must be an object of feature values", index)
        names = self.feature_names
        unknown = [k for k in instance if k not in names]
        if unknown:
            raise SchemaError(str(unknown[0]), f"unknown feature; expected {names}", index)
        row: list[float] = []
        for name in names:
            if name not in instance:
                raise SchemaError(name, "missing feature", index)
            value = instance[name]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise SchemaError(name, f"must be a number, got {type(value).__name__}", index)
            try:
                number = float(value)
            except OverflowError:
                raise SchemaError(name, "is too large for a number", index) from None
            if not math.isfinite(number):
                raise SchemaError(name, NOT_FINITE, index)
            if abs(number) > FLOAT32_MAX:
                raise SchemaError(name, BEYOND_FLOAT32, index)
            row.append(number)
        return row

    def check_values(self, matrix: np.ndarray) -> None:
        """The finiteness and float32 checks of `validate_instance`, vectorised over a batch.

        `matrix` holds the batch's numbers in feature order (float64, one row per instance).

        Raises:
            SchemaError: for the first offending value in row order, as `validate_instance` would.
        """
        bad = ~np.isfinite(matrix)
        bad |= np.abs(np.where(bad, 0.0, matrix)) > FLOAT32_MAX
        if bad.any():
            index, col = (int(i) for i in np.argwhere(bad)[0])
            message = NOT_FINITE if not math.isfinite(float(matrix[index, col])) else BEYOND_FLOAT32
            raise SchemaError(self.features[col].name, message, index)

    def to_matrix(self, instances: Sequence[Any]) -> np.ndarray:
        """Validate a batch and return a float32 matrix in feature order."""
        if not instances:
            raise SchemaError("instances", "must contain at least one instance")
        rows = [self.validate_instance(inst, i) for i, inst in enumerate(instances)]
        return np.asarray(rows, dtype=np.float32)
