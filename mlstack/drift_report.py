"""The drift report: the latest prediction window against the champion's reference sample.

One implementation for both writers of `drift.html`: the pipeline's drift-report stage and the
exporter's drift refresh (which caches the reference per version and keeps the result as metrics).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pandas as pd
import sqlalchemy as sa

from mlstack.config import Config
from mlstack.contract import REFERENCE_ARTIFACT
from mlstack.drift import (
    MAX_CURRENT_ROWS,
    PREDICTION_COLUMN,
    DriftResult,
    compute_drift,
    write_html_report,
    write_placeholder_report,
)
from mlstack.store import PredictionStore, predictions

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

DriftStatus = Literal["no_champion", "insufficient_data", "ok"]


@dataclass(frozen=True)
class WindowSample:
    """The newest `size` predictions: how many exist, and up to `sample` of them as a frame."""

    rows: int  # predictions in the window (<= the configured size)
    frame: pd.DataFrame  # feature columns + `prediction` + `model_version`, at most `sample` rows


def read_window(store: PredictionStore, size: int, sample: int = MAX_CURRENT_ROWS) -> WindowSample:
    """Count the newest `size` predictions and load at most `sample` of them.

    Prediction ids are random hex, so the first `sample` ids of the window in id order are a
    uniform sample that stays the same between refreshes while the window does. Parsing is
    bounded by `sample`, so a 100,000-row window costs little more than a 10,000-row one.
    """
    window = sa.select(predictions.c.id).order_by(predictions.c.ts.desc()).limit(size).subquery()
    count = sa.select(sa.func.count()).select_from(window)
    rows = (
        sa.select(predictions.c.features, predictions.c.prediction, predictions.c.model_version)
        .join(window, predictions.c.id == window.c.id)
        .order_by(predictions.c.id)
        .limit(sample)
    )
    with store.engine.connect() as conn:
        total = int(conn.execute(count).scalar_one())
        records = conn.execute(rows).all()
    frame = pd.DataFrame([json.loads(r.features) for r in records])
    frame[PREDICTION_COLUMN] = pd.Series([r.prediction for r in records], dtype="int64")
    frame["model_version"] = pd.Series([r.model_version for r in records], dtype="object")
    return WindowSample(rows=total, frame=frame)


def download_reference(client: MlflowClient, run_id: str) -> tuple[pd.DataFrame, str]:
    """A training run's drift reference sample and the first 16 hex digits of its file's SHA-256."""
    with tempfile.TemporaryDirectory(prefix="mlstack-reference-") as tmp:
        local = Path(client.download_artifacts(run_id, REFERENCE_ARTIFACT, tmp))
        return pd.read_parquet(local), hashlib.sha256(local.read_bytes()).hexdigest()[:16]


@dataclass(frozen=True)
class DriftReport:
    """What one drift report found, and where it was written."""

    status: DriftStatus
    rows: int  # predictions in the window
    min_rows: int  # exporter.drift_min_rows
    version: str | None  # the champion whose reference was compared
    result: DriftResult | None  # only when status is "ok"
    path: Path

    def summary(self) -> str:
        """One line for the pipeline's stage result."""
        if self.status == "no_champion":
            return "skipped: no champion"
        if self.result is None:
            return f"insufficient data ({self.rows} rows); note written to {self.path}"
        verdict = "DRIFT" if self.result.dataset_drift else "no drift"
        return (
            f"{verdict}: {self.result.drifted_count}/{len(self.result.features)} features drifted "
            f"({self.result.current_rows} rows vs v{self.version} reference); report {self.path}"
        )


def write_report(
    config: Config,
    path: Path,
    version: str | None,
    reference: pd.DataFrame | None,
    window: WindowSample | None,
) -> DriftReport:
    """Compare `window` with the champion `version`'s `reference` and write the HTML report to `path`.

    Without a champion, or with fewer than `exporter.drift_min_rows` predictions, the page says so
    instead (an old report must not stay up looking current).
    """
    min_rows = config.exporter.drift_min_rows
    if version is None or reference is None:
        write_placeholder_report(path, "Drift: no champion", "No champion yet: nothing to compare against.")
        return DriftReport("no_champion", 0, min_rows, None, None, path)
    rows = window.rows if window is not None else 0
    if window is None or rows < min_rows:
        write_placeholder_report(
            path,
            "Drift: insufficient data",
            f"Insufficient data: {rows} logged predictions, {min_rows} needed (exporter.drift_min_rows). "
            f"Reference: model version {version}.",
        )
        return DriftReport("insufficient_data", rows, min_rows, version, None, path)
    result = compute_drift(
        reference, window.frame, reference_features(reference), config.monitoring.drift_share_threshold
    )
    write_html_report(result, path)
    return DriftReport("ok", rows, min_rows, version, result, path)


def reference_features(reference: pd.DataFrame) -> list[str]:
    """The features a reference sample holds: every column but the model's prediction."""
    return [str(c) for c in reference.columns if c != PREDICTION_COLUMN]


def champion_reference(config: Config) -> tuple[str, pd.DataFrame, list[str]] | None:
    """(version, reference sample, feature names) of the champion, or None before the first promotion."""
    from mlstack import registry

    client = registry.make_client(config)
    champ = registry.champion_version(client, config)
    if champ is None or not champ.run_id:
        return None
    reference, _ = download_reference(client, champ.run_id)
    return str(champ.version), reference, reference_features(reference)


def write_drift_report(config: Config, path: Path) -> str:
    """The drift-report stage: fetch the champion's reference and the latest window, write the report."""
    from mlstack.feedback import store_exists

    found = champion_reference(config)
    version, reference = (found[0], found[1]) if found else (None, None)
    window = None
    if version is not None and store_exists(config.prediction_store_url):
        store = PredictionStore(config.prediction_store_url)
        try:
            window = read_window(store, config.exporter.drift_window)
        finally:
            store.dispose()
    return write_report(config, path, version, reference, window).summary()
