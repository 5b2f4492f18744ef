"""Data drift of live predictions against a model's reference sample, computed with Evidently 0.7."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.metrics import ValueDrift
from evidently.presets import DataDriftPreset

from mlstack.schema import category_text, numeric_values

PREDICTION_COLUMN = "prediction"
MAX_CURRENT_ROWS = 10_000  # larger windows are sampled: see compute_drift


@dataclass(frozen=True)
class ColumnDrift:
    """One column's drift test: Evidently's score, its method and threshold, and the verdict.

    p-value methods (K-S, chi-square, Z) drift when the score is *below* the threshold;
    distance methods (Wasserstein, Jensen-Shannon, PSI) drift when it is *at or above* it.
    """

    column: str
    score: float
    method: str
    threshold: float
    drifted: bool


@dataclass
class DriftResult:
    """One drift reading: dataset verdict, per-feature tests, predicted-class drift."""

    dataset_drift: bool
    share_drifted: float
    drifted_count: int
    threshold: float
    features: dict[str, ColumnDrift]
    prediction: ColumnDrift | None
    current_rows: int  # rows in the window
    sampled_current_rows: int  # rows Evidently compared (the window, sampled down when larger)
    reference_rows: int
    duration_s: float
    snapshot: Any = field(default=None, repr=False)  # evidently Snapshot, for the HTML report

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view (no snapshot)."""
        return {
            "dataset_drift": self.dataset_drift,
            "share_drifted": self.share_drifted,
            "drifted_count": self.drifted_count,
            "threshold": self.threshold,
            "features": {name: vars(col) for name, col in self.features.items()},
            "prediction": vars(self.prediction) if self.prediction else None,
            "current_rows": self.current_rows,
            "sampled_current_rows": self.sampled_current_rows,
            "reference_rows": self.reference_rows,
            "duration_s": self.duration_s,
        }


def _check_columns(frame: pd.DataFrame, names: Sequence[str], which: str) -> None:
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise ValueError(f"{which} data lacks feature column(s) {missing}; it has {list(frame.columns)}")


def categorical_columns(reference: pd.DataFrame, features: Sequence[str]) -> list[str]:
    """The features a reference sample holds as text (or booleans): categorical, for Evidently.

    The reference is a model frame (`FeatureSchema.model_frame`): numeric columns are float64 and
    categorical ones hold category strings, so its dtypes tell the two apart without the schema.
    """
    return [
        name
        for name in features
        if not pd.api.types.is_numeric_dtype(reference[name]) or pd.api.types.is_bool_dtype(reference[name])
    ]


def _prepare(
    frame: pd.DataFrame, features: list[str], categorical: Sequence[str], with_prediction: bool
) -> pd.DataFrame:
    columns = [*features, PREDICTION_COLUMN] if with_prediction else features
    prepared = frame[columns].reset_index(drop=True)
    for name in features:
        prepared[name] = (
            category_text(prepared[name]) if name in categorical else numeric_values(prepared[name])
        )
    if with_prediction:
        prepared[PREDICTION_COLUMN] = prepared[PREDICTION_COLUMN].astype("int64")
    return prepared


@dataclass(frozen=True)
class DriftSampling:
    """How much of each side the tests see: both are sampled down (reproducibly) when larger.

    Args:
        max_reference_rows: sample the reference down to this many rows; None keeps all.
        max_current_rows: sample the current window down to this many rows; None keeps all.
        seed: sampling seed, so readings are reproducible.
    """

    max_reference_rows: int | None = 5_000
    max_current_rows: int | None = MAX_CURRENT_ROWS
    seed: int = 0


def compute_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    feature_names: Sequence[str],
    threshold: float,
    *,
    sampling: DriftSampling = DriftSampling(),
    preset: bool = False,
    categorical: Sequence[str] | None = None,
) -> DriftResult:
    """Compare `current` with `reference` column by column (Evidently `DataDriftPreset`).

    Each column gets one Evidently `ValueDrift` metric, which picks the test from the reference
    size and column type (K-S for numeric columns with a reference of at most 1,000 rows;
    chi-square, or Z for two categories, for categorical features and the predicted class) - the
    same per-column metrics `DataDriftPreset` generates. Missing values are left out of a column's test.
    Dataset drift is declared when the share of drifted *features* reaches `threshold`; the
    `prediction` column, when both frames have it, is tested separately and not counted in the share.

    Speed: a two-sample test's effective size is n*m/(n+m), bounded by the smaller side, so with a
    500-row reference a 10,000-row sample of the window keeps ~95% of it; larger windows are sampled.

    Args:
        reference: the model's reference sample (features, optionally `prediction`).
        current: the live window (same columns).
        feature_names: the feature columns to test.
        threshold: share of drifted features that means dataset drift (0..1).
        sampling: row bounds and seed (DriftSampling).
        preset: run `DataDriftPreset` as well, for its summary table in the HTML report
            (about 3x slower: it tests every column twice more).
        categorical: the categorical features; None: those the reference holds as text
            (`categorical_columns`).

    Raises:
        ValueError: empty frames, missing feature columns or a threshold outside 0..1.
    """
    features = [str(f) for f in feature_names]
    if not features:
        raise ValueError("feature_names is empty; pass the model's feature columns")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be a share between 0 and 1, got {threshold}")
    if reference.empty or current.empty:
        raise ValueError(
            f"drift needs rows on both sides (reference: {len(reference)}, current: {len(current)})"
        )
    _check_columns(reference, features, "reference")
    _check_columns(current, features, "current")
    window_rows = len(current)
    max_reference_rows, max_current_rows = sampling.max_reference_rows, sampling.max_current_rows
    if max_reference_rows is not None and len(reference) > max_reference_rows:
        reference = reference.sample(max_reference_rows, random_state=sampling.seed)
    if max_current_rows is not None and len(current) > max_current_rows:
        current = current.sample(max_current_rows, random_state=sampling.seed)
    with_prediction = PREDICTION_COLUMN in reference.columns and PREDICTION_COLUMN in current.columns
    kinds = list(categorical) if categorical is not None else categorical_columns(reference, features)
    definition = DataDefinition(
        numerical_columns=[f for f in features if f not in kinds],
        categorical_columns=[*kinds, *([PREDICTION_COLUMN] if with_prediction else [])],
    )
    metrics: list[Any] = (
        [DataDriftPreset(columns=features, drift_share=threshold)]
        if preset
        else [ValueDrift(column=name) for name in features]
    )
    if with_prediction:
        metrics.append(ValueDrift(column=PREDICTION_COLUMN))
    started = time.perf_counter()
    snapshot = Report(metrics, include_tests=True).run(
        Dataset.from_pandas(_prepare(current, features, kinds, with_prediction), data_definition=definition),
        Dataset.from_pandas(
            _prepare(reference, features, kinds, with_prediction), data_definition=definition
        ),
    )
    columns = _parse_columns(snapshot.dict())
    feature_results = {name: columns[name] for name in features}
    drifted = sum(1 for col in feature_results.values() if col.drifted)
    share = drifted / len(features)
    return DriftResult(
        dataset_drift=share >= threshold,
        share_drifted=share,
        drifted_count=drifted,
        threshold=threshold,
        features=feature_results,
        prediction=columns.get(PREDICTION_COLUMN) if with_prediction else None,
        current_rows=window_rows,
        sampled_current_rows=len(current),
        reference_rows=len(reference),
        duration_s=time.perf_counter() - started,
        snapshot=snapshot,
    )


def _parse_columns(report: dict[str, Any]) -> dict[str, ColumnDrift]:
    """Pull each ValueDrift metric and its test verdict out of `Snapshot.dict()`."""
    verdicts: dict[str, bool] = {}
    for test in report.get("tests", []):
        bound = test.get("bound_test", {})
        if bound.get("type", "").endswith("ValueDriftBoundTest"):
            verdicts[bound["metric_fingerprint"]] = test.get("status") == "FAIL"
    columns: dict[str, ColumnDrift] = {}
    for metric in report.get("metrics", []):
        config = metric.get("config", {})
        if not config.get("type", "").endswith("ValueDrift"):
            continue
        name = str(config["column"])
        if metric["id"] not in verdicts:
            raise RuntimeError(f"Evidently returned no drift test for column {name!r}")
        columns[name] = ColumnDrift(
            column=name,
            score=float(metric["value"]),
            method=str(config.get("method") or "unknown"),
            threshold=float(config.get("threshold") or 0.0),
            drifted=verdicts[metric["id"]],
        )
    return columns


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_html_report(result: DriftResult, path: str | Path) -> Path:
    """Write Evidently's HTML report for `result` to `path` atomically (readers never see half a file)."""
    if result.snapshot is None:
        raise ValueError("this DriftResult carries no Evidently snapshot to render")
    target = Path(path)
    _atomic_write_text(target, result.snapshot.get_html_str(as_iframe=False))
    return target


def write_placeholder_report(path: str | Path, title: str, message: str) -> Path:
    """Write a small HTML page instead of a report (no reference, too few rows), so nothing stale is kept."""

    body = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title></head><body><h1>{escape(title)}</h1>"
        f"<p>{escape(message)}</p></body></html>"
    )
    target = Path(path)
    _atomic_write_text(target, body)
    return target
