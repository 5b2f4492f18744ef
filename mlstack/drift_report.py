"""The drift-report stage: the latest prediction window against the champion's reference sample."""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow
import pandas as pd

from mlstack import registry
from mlstack.config import Config
from mlstack.contract import METADATA_FEATURE_SCHEMA, REFERENCE_ARTIFACT
from mlstack.drift import compute_drift, write_html_report, write_placeholder_report
from mlstack.feedback import store_exists
from mlstack.schema import FeatureSchema
from mlstack.store import PredictionStore


def champion_reference(config: Config) -> tuple[str, pd.DataFrame, list[str]] | None:
    """(version, reference sample, feature names) of the champion, or None before the first promotion."""
    client = registry.make_client(config)
    champ = registry.champion_version(client, config)
    if champ is None or champ.run_id is None:
        return None
    mlflow.set_tracking_uri(config.mlflow.tracking_uri)
    info = mlflow.models.get_model_info(
        f"models:/{config.project.registered_model}@{config.project.champion_alias}"
    )
    schema = FeatureSchema.from_dict((info.metadata or {})[METADATA_FEATURE_SCHEMA])
    with tempfile.TemporaryDirectory() as tmp:
        path = mlflow.artifacts.download_artifacts(
            run_id=champ.run_id,
            artifact_path=REFERENCE_ARTIFACT,
            dst_path=tmp,
            tracking_uri=config.mlflow.tracking_uri,
        )
        reference = pd.read_parquet(path)
    return champ.version, reference, schema.feature_names


def write_drift_report(config: Config, path: Path) -> str:
    """Compute drift on the latest window and write Evidently's HTML report (or a note saying why not)."""
    found = champion_reference(config)
    if found is None:
        write_placeholder_report(path, "Drift report", "No champion yet: nothing to compare against.")
        return "skipped: no champion"
    version, reference, features = found
    url = config.prediction_store_url
    current = pd.DataFrame()
    if store_exists(url):
        store = PredictionStore(url)
        try:
            current = store.latest_window(config.exporter.drift_window)
        finally:
            store.dispose()
    if len(current) < config.exporter.drift_min_rows:
        message = (
            f"Insufficient data: {len(current)} logged predictions, "
            f"{config.exporter.drift_min_rows} needed (exporter.drift_min_rows)."
        )
        write_placeholder_report(path, f"Drift report for v{version}", message)
        return f"insufficient data ({len(current)} rows); note written to {path}"
    result = compute_drift(reference, current, features, config.monitoring.drift_share_threshold)
    write_html_report(result, path)
    verdict = "DRIFT" if result.dataset_drift else "no drift"
    return (
        f"{verdict}: {result.drifted_count}/{len(result.features)} features drifted "
        f"({result.current_rows} rows vs v{version} reference); report {path}"
    )
