"""Feature types inferred from the data, and the config's overrides (`data.columns`) applied on top.

Inference is deliberately simple and predictable, so that a person can guess its answer and
override it when it is wrong:

- a column pandas reads as numbers (or booleans) is numeric;
- a text column is numeric when at least `NUMERIC_SHARE` of its present values parse as numbers
  (the rest are then reported by validate-data as values that do not parse), else categorical;
- a column may be missing (`nullable`) when the training data has gaps in it;
- a categorical column's categories are the ones the training data holds; its vocabulary stays
  open (an unseen category is encoded as "none of the known ones") unless the config declares the
  categories, which closes it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from mlstack.config import ColumnOverride, DataConfig
from mlstack.schema import (
    CATEGORICAL,
    NUMERIC,
    UNKNOWN_ERROR,
    UNKNOWN_IGNORE,
    ClassSpec,
    FeatureKind,
    FeatureSchema,
    FeatureSpec,
    category_text,
    numeric_values,
)

# A text column is numeric when this share of its present values parse as numbers: a few typos
# ("12,5", "n.a.") in a numeric column are data errors to report, not a reason to one-hot it.
NUMERIC_SHARE = 0.9


def missing_mask(column: pd.Series) -> pd.Series:
    """Missing values: null, NaN, or an empty / blank string."""
    mask = column.isna()
    if column.dtype == object or pd.api.types.is_string_dtype(column):
        blank = column.map(lambda v: isinstance(v, str) and v.strip() == "")
        mask = mask | blank.astype(bool)
    return mask


def unparseable_mask(column: pd.Series) -> pd.Series:
    """Present values that are not numbers (text that does not parse, e.g. "12,5" or "n.a.")."""
    if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
        return pd.Series(False, index=column.index)
    present = ~missing_mask(column)
    parsed = pd.to_numeric(column.where(present), errors="coerce")
    return present & parsed.isna()


def infer_kind(column: pd.Series) -> FeatureKind:
    """Numeric or categorical, by the rules in this module's docstring."""
    if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
        return NUMERIC
    present = int((~missing_mask(column)).sum())
    if present == 0:
        return NUMERIC
    bad = int(unparseable_mask(column).sum())
    return NUMERIC if (present - bad) / present >= NUMERIC_SHARE else CATEGORICAL


def infer_feature(name: str, column: pd.Series, override: ColumnOverride | None = None) -> FeatureSpec:
    """One feature's spec from its training values, with the config's override on top."""
    override = override or ColumnOverride()
    kind = override.type or infer_kind(column)
    nullable = override.nullable if override.nullable is not None else bool(missing_mask(column).any())
    if kind == CATEGORICAL:
        text = category_text(column.where(~missing_mask(column)))
        counts = text.dropna().value_counts()
        seen = sorted(str(c) for c in counts.index)
        categories = list(override.categories) if override.categories is not None else seen
        known = counts[counts.index.isin(categories)]
        typical = str(known.index[0]) if len(known) else (categories[0] if categories else None)
        unknown = override.unknown or (UNKNOWN_ERROR if override.categories is not None else UNKNOWN_IGNORE)
        return FeatureSpec(
            name=name,
            typical=typical,
            kind=CATEGORICAL,
            categories=tuple(categories),
            nullable=nullable,
            unknown=unknown,
        )
    values = numeric_values(column)
    finite = values[np.isfinite(values.to_numpy())]
    if finite.empty:
        return FeatureSpec(name=name, nullable=nullable)
    return FeatureSpec(
        name=name,
        minimum=float(finite.min()),
        maximum=float(finite.max()),
        typical=float(finite.median()),
        nullable=nullable,
    )


def class_specs(target: pd.Series, class_names: Sequence[str]) -> tuple[ClassSpec, ...]:
    """The classes present in the target, with their names."""
    labels = sorted(int(v) for v in pd.unique(target.dropna()))
    return tuple(
        ClassSpec(label=lab, name=class_names[lab] if lab < len(class_names) else str(lab)) for lab in labels
    )


def infer_schema(
    features: pd.DataFrame,
    target: pd.Series,
    class_names: Sequence[str],
    target_name: str,
    data: DataConfig | None = None,
) -> FeatureSchema:
    """The feature schema of a training frame: inferred per column, then the config's overrides."""
    overrides = data.columns if data is not None else {}
    specs = tuple(infer_feature(str(c), features[c], overrides.get(str(c))) for c in features.columns)
    return FeatureSchema(
        features=specs,
        classes=class_specs(target, class_names),
        target=target_name,
        id_column=data.id_column if data is not None else None,
    )


def with_overrides(schema: FeatureSchema, data: DataConfig) -> FeatureSchema:
    """`schema` (the champion's) with the config's overrides applied: what new data is checked against.

    A nullable or categories override replaces the champion's; a type override that changes a
    column's type replaces its spec with what the override alone says (no range, and no
    vocabulary unless it declares categories).
    """
    specs = []
    for spec in schema.features:
        override = data.columns.get(spec.name)
        if override is None:
            specs.append(spec)
            continue
        if override.type is not None and override.type != spec.kind:
            spec = FeatureSpec(name=spec.name, kind=override.type, nullable=spec.nullable)
        categories = tuple(override.categories) if override.categories is not None else spec.categories
        unknown = override.unknown or (UNKNOWN_ERROR if override.categories is not None else spec.unknown)
        specs.append(
            FeatureSpec(
                name=spec.name,
                minimum=spec.minimum,
                maximum=spec.maximum,
                typical=spec.typical,
                kind=spec.kind,
                categories=categories if spec.is_categorical else (),
                nullable=override.nullable if override.nullable is not None else spec.nullable,
                unknown=unknown if spec.is_categorical else UNKNOWN_IGNORE,
            )
        )
    return FeatureSchema(tuple(specs), schema.classes, schema.target, data.id_column or schema.id_column)
