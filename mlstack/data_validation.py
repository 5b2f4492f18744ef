"""The validate-data stage: columns, types, missing values, categories and value ranges of a dataset.

Two layers, so that the feedback quarantine can reuse the checks row by row:

- `column_issues(frame, schema)` checks every feature column of a frame against a schema and
  returns, per problem, the column, the kind of problem and the positions of the offending rows.
  `row_reasons` turns that into one reason string per row ("" = the row is fine).
- `validate_dataset` runs those checks, plus the dataset-level ones (columns present, classes,
  rows per class), and reports each problem once, naming the column and the row count.

What the data is checked against:

- the schema the data declares: inferred from it plus the config's overrides (`data.columns`).
  Inference accepts what it sees, so this finds values that do not parse in a numeric column,
  and breaks of what the config declares: missing values where `nullable: false`, categories
  outside declared `categories`;
- the champion's schema with the config's overrides on top, when there is a champion: the same
  columns, values within a slack band around its training ranges, no missing values where it
  allows none. Categories it has not seen are a warning (the new model learns them), unless the
  config declares the vocabulary.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, Literal

import numpy as np
import pandas as pd

from mlstack.config import DataConfig
from mlstack.data import Dataset
from mlstack.feature_types import infer_schema, missing_mask, unparseable_mask, with_overrides
from mlstack.schema import FeatureSchema, FeatureSpec, category_text, numeric_values

MIN_ROWS_PER_CLASS = 5
# A value further than this many training ranges outside [min, max] is treated as a unit or
# encoding error, not as drift: drift is the exporter's job, broken data is this stage's.
RANGE_SLACK = 1.0
# A categorical column with more distinct values than this share of its rows looks like an id or
# free text: one-hot encoding it learns nothing. Reported as a warning.
HIGH_CARDINALITY_SHARE = 0.5
HIGH_CARDINALITY_MIN = 50
EXAMPLES = 3  # offending values quoted per problem

IssueKind = Literal["not_numeric", "missing", "infinite", "out_of_range", "unknown_category"]
NOT_NUMERIC: Final[IssueKind] = "not_numeric"
MISSING: Final[IssueKind] = "missing"
INFINITE: Final[IssueKind] = "infinite"
OUT_OF_RANGE: Final[IssueKind] = "out_of_range"
UNKNOWN_CATEGORY: Final[IssueKind] = "unknown_category"


@dataclass(frozen=True)
class ColumnIssue:
    """One problem in one column: which rows (positions in the frame) and a sentence saying what."""

    column: str
    kind: IssueKind
    rows: np.ndarray  # positions (0-based) of the offending rows
    message: str  # names the column and the row count, e.g. "column 'age': 3 rows have missing values"
    error: bool = True  # False: worth reporting, not worth refusing the data for

    @property
    def count(self) -> int:
        return len(self.rows)


@dataclass
class ValidationReport:
    """What validation found; `errors` empty means the data may be trained on."""

    rows: int
    columns: list[str]
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    issues: list[ColumnIssue] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


class DataValidationError(ValueError):
    """The dataset failed validation; the message lists every problem."""

    def __init__(self, report: ValidationReport) -> None:
        self.report = report
        super().__init__("data validation failed:\n  - " + "\n  - ".join(report.errors))


def _examples(values: Iterable[object]) -> str:
    shown = list(dict.fromkeys(str(v) for v in values))
    more = ", ..." if len(shown) > EXAMPLES else ""
    return ", ".join(repr(v) for v in shown[:EXAMPLES]) + more


def _positions(mask: pd.Series | np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.asarray(mask, dtype=bool))


def check_column(
    column: pd.Series,
    spec: FeatureSpec,
    *,
    range_slack: float | None = None,
    unknown_is_error: bool | None = None,
    against: str = "",
) -> list[ColumnIssue]:
    """Check one column's values against its spec.

    Args:
        column: the raw values (as read from the CSV or logged by the predictor).
        spec: the feature's spec.
        range_slack: check numeric values against [min - slack*range, max + slack*range]; None: no check.
        unknown_is_error: whether a category outside `spec.categories` is an error; None: only when
            the spec's vocabulary is closed (`unknown: error`). An empty vocabulary is never checked.
        against: appended to messages about the schema checked against ("the champion's schema").
    """
    name = spec.name
    issues: list[ColumnIssue] = []
    suffix = f" ({against})" if against else ""
    missing = missing_mask(column)
    if not spec.nullable and missing.any():
        rows = _positions(missing)
        issues.append(
            ColumnIssue(
                name,
                MISSING,
                rows,
                f"column {name!r}: {len(rows)} rows have missing values where none are allowed{suffix}; "
                f"declare data.columns.{name}.nullable: true if they may be missing",
            )
        )
    if spec.is_categorical:
        if spec.categories:
            text = category_text(column.where(~missing))
            outside = text.notna() & ~text.isin(spec.categories)
            if outside.any():
                rows = _positions(outside)
                is_error = (spec.unknown == "error") if unknown_is_error is None else unknown_is_error
                issues.append(
                    ColumnIssue(
                        name,
                        UNKNOWN_CATEGORY,
                        rows,
                        f"column {name!r}: {len(rows)} rows have unknown categories "
                        f"{_examples(text[outside])}; known: {list(spec.categories)}{suffix}",
                        error=is_error,
                    )
                )
        return issues
    if not (pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)):
        bad = unparseable_mask(column)
        if bad.any():
            rows = _positions(bad)
            issues.append(
                ColumnIssue(
                    name,
                    NOT_NUMERIC,
                    rows,
                    f"column {name!r}: {len(rows)} rows are not numeric (dtype {column.dtype}; "
                    f"values {_examples(column[bad])}); declare data.columns.{name}.type: categorical "
                    "if the column holds categories",
                )
            )
    values = numeric_values(column).to_numpy()
    infinite = np.isinf(values)
    if infinite.any():
        rows = _positions(infinite)
        issues.append(
            ColumnIssue(name, INFINITE, rows, f"column {name!r}: {len(rows)} rows have infinite values")
        )
    if range_slack is not None and spec.minimum is not None and spec.maximum is not None:
        slack = range_slack * max(spec.maximum - spec.minimum, 1e-9)
        low, high = spec.minimum - slack, spec.maximum + slack
        with np.errstate(invalid="ignore"):
            outside = np.isfinite(values) & ((values < low) | (values > high))
        if outside.any():
            rows = _positions(outside)
            issues.append(
                ColumnIssue(
                    name,
                    OUT_OF_RANGE,
                    rows,
                    f"column {name!r}: {len(rows)} rows outside the plausible range [{low:.4g}, {high:.4g}]",
                )
            )
    return issues


def column_issues(
    frame: pd.DataFrame,
    schema: FeatureSchema,
    *,
    range_slack: float | None = RANGE_SLACK,
    unknown_is_error: bool | None = None,
    against: str = "",
) -> list[ColumnIssue]:
    """Every problem of every schema feature present in `frame` (absent columns are not checked here)."""
    issues: list[ColumnIssue] = []
    for spec in schema.features:
        if spec.name in frame.columns:
            issues += check_column(
                frame[spec.name],
                spec,
                range_slack=range_slack,
                unknown_is_error=unknown_is_error,
                against=against,
            )
    return issues


def row_reasons(
    frame: pd.DataFrame,
    schema: FeatureSchema,
    *,
    range_slack: float | None = RANGE_SLACK,
    unknown_is_error: bool | None = None,
) -> pd.Series:
    """Why each row of `frame` fails the schema: "" for a good row, else "; "-joined reasons.

    The row-level view the feedback quarantine uses: each reason names the column and the problem
    (e.g. "age: missing value", "plan: unknown category 'gold'", "alcohol: out of range").
    Columns the schema has and the frame lacks make every row fail.
    """
    reasons: list[list[str]] = [[] for _ in range(len(frame))]
    absent = [n for n in schema.feature_names if n not in frame.columns]
    for name in absent:
        for row in reasons:
            row.append(f"{name}: missing column")
    for issue in column_issues(frame, schema, range_slack=range_slack, unknown_is_error=unknown_is_error):
        if not issue.error:
            continue
        column = frame[issue.column]
        for position in issue.rows:
            reasons[int(position)].append(_row_reason(issue, column.iloc[int(position)]))
    return pd.Series(["; ".join(r) for r in reasons], index=frame.index, dtype=object)


def _row_reason(issue: ColumnIssue, value: object) -> str:
    if isinstance(value, np.generic):
        value = value.item()  # 1000000.0, not np.float64(1000000.0)
    if issue.kind == MISSING:
        return f"{issue.column}: missing value"
    if issue.kind == NOT_NUMERIC:
        return f"{issue.column}: not a number ({value!r})"
    if issue.kind == UNKNOWN_CATEGORY:
        return f"{issue.column}: unknown category {value!r}"
    if issue.kind == INFINITE:
        return f"{issue.column}: infinite value"
    return f"{issue.column}: out of range ({value!r})"


def validate_dataset(
    dataset: Dataset, expected: FeatureSchema | None = None, data: DataConfig | None = None
) -> ValidationReport:
    """Check a dataset against the schema it declares and, optionally, the champion's.

    Args:
        dataset: features and target to check (raw, as loaded).
        expected: the schema of the model in production; when given (with the config's overrides
            applied), the columns must match it, values must lie within a slack band around its
            training ranges, and missing values must be allowed by it.
        data: the data config, whose `columns` overrides declare types, categories and nullability.
    """
    data = data or DataConfig()
    features, target = dataset.features, dataset.target
    report = ValidationReport(rows=len(features), columns=[str(c) for c in features.columns])
    if len(features) == 0:
        report.errors.append("dataset has no rows")
        return report
    unknown_overrides = sorted(set(data.columns) - set(report.columns))
    if unknown_overrides:
        report.errors.append(
            f"data.columns overrides {unknown_overrides}, which are not feature columns {report.columns}"
        )
    declared = infer_schema(features, target, dataset.class_names, dataset.target_name, data)
    issues = column_issues(features, declared, range_slack=None)
    if expected is not None:
        expected = with_overrides(expected, data)
        missing = [n for n in expected.feature_names if n not in features.columns]
        extra = [str(c) for c in features.columns if c not in expected.feature_names]
        if missing:
            report.errors.append(f"columns missing compared with the champion's schema: {missing}")
        if extra:
            report.errors.append(f"columns not in the champion's schema: {extra}")
        seen = {(i.column, i.kind) for i in issues}
        champion_issues = column_issues(
            features,
            expected,
            range_slack=RANGE_SLACK,
            unknown_is_error=False,
            against="the champion's schema",
        )
        issues += [i for i in champion_issues if (i.column, i.kind) not in seen]
    report.issues = issues
    for issue in issues:
        (report.errors if issue.error else report.warnings).append(issue.message)
    for spec in declared.features:
        _cardinality_warning(spec, len(features), report)
    _check_ids(dataset, report)
    _check_target(dataset, report)
    return report


def _cardinality_warning(spec: FeatureSpec, rows: int, report: ValidationReport) -> None:
    count = len(spec.categories)
    if spec.is_categorical and count > HIGH_CARDINALITY_MIN and count > HIGH_CARDINALITY_SHARE * rows:
        report.warnings.append(
            f"column {spec.name!r}: {count} categories in {rows} rows looks like an id or free text; "
            "set data.id_column or add it to data.drop_columns"
        )


def _check_ids(dataset: Dataset, report: ValidationReport) -> None:
    if dataset.ids is None:
        return
    name = dataset.ids.name
    missing = int(missing_mask(dataset.ids).sum())
    if missing:
        report.warnings.append(f"id column {name!r}: {missing} rows have no id")
    duplicated = int(dataset.ids.dropna().duplicated().sum())
    if duplicated:
        report.warnings.append(f"id column {name!r}: {duplicated} rows repeat an earlier id")


def _check_target(dataset: Dataset, report: ValidationReport) -> None:
    target = dataset.target
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


def ensure_valid(
    dataset: Dataset, expected: FeatureSchema | None = None, data: DataConfig | None = None
) -> ValidationReport:
    """Validate and raise DataValidationError listing every problem."""
    report = validate_dataset(dataset, expected, data)
    if not report.ok:
        raise DataValidationError(report)
    return report
