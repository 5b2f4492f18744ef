"""Exporter test helpers: runs, versions and predictions as the project logs them."""

from __future__ import annotations

import tempfile
import time
import uuid
from pathlib import Path

import pandas as pd
from mlflow.entities import Metric, RunTag
from mlflow.tracking import MlflowClient

from mlstack.contract import REFERENCE_ARTIFACT
from mlstack.store import PredictionRecord, PredictionStore


def log_training_run(
    client: MlflowClient,
    experiment: str,
    metrics: dict[str, float],
    reference: pd.DataFrame | None = None,
    data_hash: str = "hash0",
) -> str:
    """A finished training run as train.py logs it: test-set metrics, data_hash tag, reference sample."""
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    run = client.create_run(experiment_id, tags={"data_hash": data_hash})
    now = int(time.time() * 1000)
    client.log_batch(run.info.run_id, metrics=[Metric(k, v, now, 0) for k, v in metrics.items()])
    if reference is not None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(REFERENCE_ARTIFACT).name
            reference.to_parquet(path, index=False)
            client.log_artifact(run.info.run_id, str(path), str(Path(REFERENCE_ARTIFACT).parent))
    client.set_terminated(run.info.run_id)
    return str(run.info.run_id)


def register_version(client: MlflowClient, name: str, run_id: str, data_hash: str = "hash0") -> str:
    """Register a run's model as a new version (the source need not hold a loadable model here)."""
    if not client.search_registered_models(f"name = '{name}'"):
        client.create_registered_model(name)
    run = client.get_run(run_id)
    version = client.create_model_version(
        name,
        source=f"{run.info.artifact_uri}/model",
        run_id=run_id,
        tags={"data_hash": data_hash, "trigger": "manual"},
    )
    return str(version.version)


def log_pipeline_run(
    client: MlflowClient, experiment: str, status: str, trigger: str, duration_s: float
) -> str:
    """One pipeline execution, as the pipeline records it in `<experiment>-pipeline`."""
    name = f"{experiment}-pipeline"
    found = client.get_experiment_by_name(name)
    experiment_id = found.experiment_id if found else client.create_experiment(name)
    run = client.create_run(experiment_id, tags={"status": status, "trigger": trigger})
    client.log_batch(
        run.info.run_id,
        tags=[RunTag("status", status)],
        metrics=[Metric("duration_s", duration_s, int(time.time() * 1000), 0)],
    )
    client.set_terminated(run.info.run_id)
    return str(run.info.run_id)


def write_predictions(
    store: PredictionStore,
    features: pd.DataFrame,
    version: str,
    model_name: str = "wine-classifier",
    predictions: list[int] | None = None,
    start_ts: float | None = None,
) -> list[str]:
    """Log one prediction per row straight into the store (as the predictor's log writer would)."""
    start = time.time() if start_ts is None else start_ts
    labels = predictions if predictions is not None else [0] * len(features)
    records = [
        PredictionRecord(
            id=uuid.uuid4().hex,
            ts=start + i * 1e-3,
            model_name=model_name,
            model_version=version,
            features={k: float(v) for k, v in row.items()},
            prediction=int(labels[i]),
            probabilities=[1.0],
        )
        for i, row in enumerate(features.to_dict(orient="records"))
    ]
    store.insert_predictions(records)
    return [r.id for r in records]
