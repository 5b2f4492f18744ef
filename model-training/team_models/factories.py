"""Candidate factories: `factory(schema, **params) -> Pipeline`, named in mlstack.yaml by dotted path.

    training:
      candidates:
        - name: log_logistic
          estimator: team_models.factories.log_numeric_logistic
          params: {log_columns: [monthly_spend, support_tickets], C: 0.5}

mlstack calls the factory with the feature schema it inferred (and the config overrode) and the
candidate's `params`. The Pipeline must start with a ColumnTransformer, so the served model takes
raw rows; the building blocks in `mlstack.preprocessing` give you the project's standard branches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from mlstack.preprocessing import NUMERIC_STEP, column_transformer, numeric_pipeline
from mlstack.schema import FeatureSchema
from team_models.features import SignedLog1p


def log_numeric_logistic(
    schema: FeatureSchema,
    log_columns: Sequence[str] | None = None,
    C: float = 1.0,
    max_iter: int = 2000,
) -> Pipeline:
    """The schema's preprocessing, `SignedLog1p` on heavy-tailed numeric columns, logistic regression.

    Args:
        schema: the feature schema (mlstack passes it).
        log_columns: numeric columns to compress; default: every numeric column.
        C, max_iter: passed to LogisticRegression.

    Raises:
        ValueError: a log column that is not a numeric feature (the candidate then fails, alone).
    """
    numeric = schema.numeric_names
    chosen = list(log_columns) if log_columns is not None else numeric
    wrong = [c for c in chosen if c not in numeric]
    if wrong:
        raise ValueError(f"log_columns {wrong} are not numeric features (numeric: {numeric})")
    preprocess = column_transformer(schema)
    branches: list[tuple[str, Any, list[str]]] = [
        (name, part, columns) for name, part, columns in preprocess.transformers if name != NUMERIC_STEP
    ]
    log_branch = Pipeline(
        [("impute", SimpleImputer(strategy="median")), ("log", SignedLog1p()), ("scale", StandardScaler())]
    )
    others = [c for c in numeric if c not in chosen]
    branches = [
        ("log_numeric", log_branch, chosen),
        *([(NUMERIC_STEP, numeric_pipeline(), others)] if others else []),
        *branches,
    ]
    preprocess.set_params(transformers=branches)
    return Pipeline([("preprocess", preprocess), ("model", LogisticRegression(C=C, max_iter=max_iter))])
