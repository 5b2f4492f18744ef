"""The preprocessing every candidate starts with, built from the feature schema, and its ONNX form.

`column_transformer(schema)` is the first step of every candidate Pipeline, so the served model
takes raw rows:

- numeric columns: median imputation, then (optionally) standardisation;
- categorical columns: missing values become the category `MISSING_CATEGORY`, then one-hot
  encoding over the schema's categories. An unseen category is encoded as all zeros
  (`handle_unknown="ignore"`) when the column's vocabulary is open: a new product plan must not
  take the predictor down, and the predictor counts such values so that drift shows them. A
  closed vocabulary (`unknown: error`) refuses it instead.

ONNX: numeric columns are float32 inputs, categorical columns string inputs. A schema of numbers
only keeps the single float matrix input (`input`, shape [N, features]) models had before feature
types existed. ONNX has no missing string, so the ONNX graph reads the empty string as missing
(the predictor sends "" for a missing category); the sklearn model reads NaN/None.
"""

from __future__ import annotations

import copy
import logging
from typing import Any, Final

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlstack.schema import UNKNOWN_ERROR, FeatureSchema

log = logging.getLogger(__name__)

MISSING_CATEGORY: Final = "__missing__"
NUMERIC_STEP: Final = "numeric"
CATEGORICAL_STEP: Final = "categorical"
CLOSED_CATEGORICAL_STEP: Final = "categorical_closed"
PREPROCESS_STEP: Final = "preprocess"
MODEL_STEP: Final = "model"
# The single input of a numbers-only ONNX model (the name models had before feature types).
MATRIX_INPUT: Final = "input"
ONNX_MISSING_STRING: Final = ""


def numeric_pipeline(scale: bool = True) -> Pipeline:
    """Median imputation, then standardisation when `scale` (trees do not need it)."""
    steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median"))]
    if scale:
        steps.append(("scale", StandardScaler()))
    return Pipeline(steps)


def categorical_pipeline(schema: FeatureSchema, names: list[str]) -> Pipeline:
    """Missing -> `MISSING_CATEGORY`, then one-hot over the schema's categories (plus the missing one).

    The columns must share one unknown-category policy (`column_transformer` groups them so).
    """
    specs = [schema.feature(n) for n in names]
    categories = [
        [*s.categories, *([MISSING_CATEGORY] if s.nullable and MISSING_CATEGORY not in s.categories else [])]
        for s in specs
    ]
    closed = any(s.unknown == UNKNOWN_ERROR for s in specs)
    return Pipeline(
        [
            ("impute", SimpleImputer(strategy="constant", fill_value=MISSING_CATEGORY)),
            (
                "onehot",
                OneHotEncoder(
                    categories=categories,
                    handle_unknown="error" if closed else "ignore",
                    sparse_output=False,
                ),
            ),
        ]
    )


def column_transformer(schema: FeatureSchema, scale: bool = True) -> ColumnTransformer:
    """The schema's preprocessing: numeric and categorical branches, columns selected by name.

    Categorical columns with an open vocabulary share one encoder that ignores unknown
    categories; those with a closed one (`unknown: error`) share one that refuses them.
    Use it as the first step of a Pipeline (`factory(schema, **params)` estimators do too).
    """
    transformers: list[tuple[str, Any, list[str]]] = []
    if schema.numeric_names:
        transformers.append((NUMERIC_STEP, numeric_pipeline(scale), schema.numeric_names))
    open_ = [f.name for f in schema.features if f.is_categorical and f.unknown != UNKNOWN_ERROR]
    closed = [f.name for f in schema.features if f.is_categorical and f.unknown == UNKNOWN_ERROR]
    if open_:
        transformers.append((CATEGORICAL_STEP, categorical_pipeline(schema, open_), open_))
    if closed:
        transformers.append((CLOSED_CATEGORICAL_STEP, categorical_pipeline(schema, closed), closed))
    return ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)


def model_pipeline(schema: FeatureSchema, estimator: Any, scale: bool = True) -> Pipeline:
    """`[preprocess, model]`: the schema's ColumnTransformer, then the estimator."""
    return Pipeline([(PREPROCESS_STEP, column_transformer(schema, scale)), (MODEL_STEP, estimator)])


# --------------------------------------------------------------------------- ONNX


def onnx_initial_types(schema: FeatureSchema) -> list[tuple[str, Any]]:
    """skl2onnx input declarations: one float matrix for numbers only, else one input per column."""
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    if not schema.categorical_names:
        return [(MATRIX_INPUT, FloatTensorType([None, len(schema.features)]))]
    return [
        (f.name, StringTensorType([None, 1]) if f.is_categorical else FloatTensorType([None, 1]))
        for f in schema.features
    ]


def onnx_ready_copy(model: Pipeline, schema: FeatureSchema) -> Pipeline:
    """A copy of a fitted pipeline that skl2onnx converts with `onnx_initial_types(schema)`.

    Two differences, both invisible to the predictions: the categorical imputers treat "" as
    missing (ONNX strings cannot be null, and skl2onnx imputes strings only for a string marker),
    and a numbers-only ColumnTransformer selects columns by position in the single input.
    """
    converted = copy.deepcopy(model)
    for step in converted.steps:
        transformer = step[1]
        if not isinstance(transformer, ColumnTransformer):
            continue
        positions = {name: i for i, name in enumerate(schema.feature_names)}
        fitted = []
        for name, part, columns in transformer.transformers_:
            _string_imputers_read_empty(part)
            if not schema.categorical_names and isinstance(columns, list | tuple | np.ndarray):
                columns = [positions[c] if isinstance(c, str) else c for c in columns]
            fitted.append((name, part, columns))
        transformer.transformers_ = fitted
    return converted


def _string_imputers_read_empty(part: Any) -> None:
    steps = part.steps if isinstance(part, Pipeline) else [(None, part)]
    for _, step in steps:
        if isinstance(step, SimpleImputer) and isinstance(step.fill_value, str):
            step.missing_values = ONNX_MISSING_STRING


def onnx_feeds(frame: pd.DataFrame, schema: FeatureSchema) -> dict[str, np.ndarray]:
    """ONNX Runtime inputs for a model frame (`FeatureSchema.model_frame`), for `onnx_initial_types`."""
    if not schema.categorical_names:
        return {MATRIX_INPUT: frame[schema.feature_names].to_numpy(dtype=np.float32)}
    feeds: dict[str, np.ndarray] = {}
    for spec in schema.features:
        column = frame[spec.name]
        if spec.is_categorical:
            values = column.astype(object).where(column.notna(), ONNX_MISSING_STRING)
            feeds[spec.name] = values.to_numpy(dtype=object).astype(str).reshape(-1, 1)
        else:
            feeds[spec.name] = column.to_numpy(dtype=np.float32).reshape(-1, 1)
    return feeds


def register_onnx_converters() -> list[str]:
    """Register converters for optional estimator libraries that are installed; returns their names.

    LightGBM: onnxmltools' converter (both ship in the `lightgbm` extra). A LightGBM that is
    installed but cannot load (its wheel needs the system's OpenMP runtime, which a slim image or a
    fresh machine may lack) must not fail the candidates that do not use it: it is skipped with a
    warning, and a LightGBM candidate then fails on its own with the same reason.
    """
    registered: list[str] = []
    try:
        from lightgbm import LGBMClassifier
        from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
        from skl2onnx import update_registered_converter
        from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes
    except ImportError:
        return registered
    except OSError as exc:  # a shared library the wheel links against is missing
        log.warning("LightGBM is installed but cannot load: %s", native_library_hint(exc))
        return registered
    update_registered_converter(
        LGBMClassifier,
        "LightGbmLGBMClassifier",
        calculate_linear_classifier_output_shapes,
        convert_lightgbm,
        options={"nocl": [True, False], "zipmap": [True, False, "columns"]},
    )
    registered.append("lightgbm.LGBMClassifier")
    return registered


def native_library_hint(exc: OSError) -> str:
    """The loader's message, plus how to install the library when it is one we know a wheel needs."""
    message = str(exc)
    if "libgomp" in message or "libomp" in message:
        return (
            f"{message} (the OpenMP runtime LightGBM needs: `apt-get install libgomp1` on Debian/Ubuntu, "
            "`brew install libomp` on macOS)"
        )
    return message
