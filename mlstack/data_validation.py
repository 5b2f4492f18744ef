"""The validate-data stage: schema, types, missing values and value ranges of a dataset."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mlstack.data import Dataset
from mlstack.schema import FeatureSchema

MIN_ROWS_PER_CLASS = 5
# A value further than this many training ranges outside [min, max] is treated as a unit or
# encoding error, not as drift: drift is the exporter's job, broken data is this stage's.
RANGE_SLACK = 1.0


@dataclass
class ValidationReport:
    """What validation found; `errors` empty means the data may be trained on."""

    rows: int
    columns: list[str]
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


class DataValidationError(ValueError):
    """The dataset failed validation; the message lists every problem."""

    def __init__(self, report: ValidationReport) -> None:
        self.report = report
        super().__init__("data validation failed:\n  - " + "\n  - ".join(report.errors))


def validate_dataset(dataset: Dataset, expected: FeatureSchema | None = None) -> ValidationReport:
    """Check a dataset, optionally against the champion's feature schema.

    Args:
        dataset: features and target to check.
        expected: the schema of the model in production; when given, the columns must match it
            and values must lie within a slack band around its training ranges.
    """
    features, target = dataset.features, dataset.target
    report = ValidationReport(rows=len(features), columns=[str(c) for c in features.columns])
    if len(features) == 0:
        report.errors.append("dataset has no rows")
        return report
    if expected is not None:
        missing = [n for n in expected.feature_names if n not in features.columns]
        extra = [str(c) for c in features.columns if c not in expected.feature_names]
        if missing:
            report.errors.append(f"columns missing compared with the champion's schema: {missing}")
        if extra:
            report.errors.append(f"columns not in the champion's schema: {extra}")
    for column in features.columns:
        _check_column(str(column), features[column], expected, report)
    missing_target = int(target.isna().sum())
    if missing_target:
        report.errors.append(f"column {dataset.target_name!r}: {missing_target} rows have no target value")
    counts = target.value_counts()
    if len(counts) < 2:
        report.errors.append(f"column {dataset.target_name!r}: needs at least 2 classes, found {len(counts)}")
    for label, count in counts.items():
        if count < MIN_ROWS_PER_CLASS:
            report.errors.append(
                f"column {dataset.target_name!r}: class {label} has {count} rows (< {MIN_ROWS_PER_CLASS})"
            )
    return report


def _check_column(
    name: str, values: pd.Series, expected: FeatureSchema | None, report: ValidationReport
) -> None:
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        numeric = pd.to_numeric(values, errors="coerce")
        bad = int((numeric.isna() & values.notna()).sum())
        report.errors.append(f"column {name!r}: {bad} rows are not numeric (dtype {values.dtype})")
        return
    missing = int(values.isna().sum())
    if missing:
        report.errors.append(f"column {name!r}: {missing} rows have missing values")
    infinite = int(np.isinf(values.to_numpy(dtype=float, na_value=0.0)).sum())
    if infinite:
        report.errors.append(f"column {name!r}: {infinite} rows have infinite values")
    spec = {f.name: f for f in expected.features}.get(name) if expected else None
    if spec is not None:
        slack = RANGE_SLACK * max(spec.maximum - spec.minimum, 1e-9)
        low, high = spec.minimum - slack, spec.maximum + slack
        outside = int(((values < low) | (values > high)).sum())
        if outside:
            report.errors.append(
                f"column {name!r}: {outside} rows outside the plausible range [{low:.4g}, {high:.4g}]"
            )


def ensure_valid(dataset: Dataset, expected: FeatureSchema | None = None) -> ValidationReport:
    """Validate and raise DataValidationError listing every problem."""
    report = validate_dataset(dataset, expected)
    if not report.ok:
        raise DataValidationError(report)
    return report
