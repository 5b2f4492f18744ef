"""Training on new data: the base dataset plus labelled feedback from the prediction store."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from mlstack import registry
from mlstack.config import Config
from mlstack.data import Dataset
from mlstack.store import PredictionStore

log = logging.getLogger(__name__)


def store_exists(url: str) -> bool:
    return not url.startswith("sqlite:///") or Path(url.removeprefix("sqlite:///")).exists()


def champion_trained_at(config: Config) -> float | None:
    """When the current champion version was created (epoch seconds), or None."""
    champ = registry.champion_version(registry.make_client(config), config)
    return champ.creation_timestamp / 1000.0 if champ is not None else None


def labelled_feedback(config: Config, feature_names: list[str]) -> pd.DataFrame:
    """Every labelled prediction in the store: feature columns, `true_label`, `feedback_ts`."""
    url = config.prediction_store_url
    if not store_exists(url):
        return pd.DataFrame(columns=[*feature_names, "true_label", "feedback_ts"])
    store = PredictionStore(url)
    try:
        store.create_schema()
        frame = store.labelled()
    finally:
        store.dispose()
    if frame.empty:
        return pd.DataFrame(columns=[*feature_names, "true_label", "feedback_ts"])
    missing = [n for n in feature_names if n not in frame.columns]
    if missing:
        raise ValueError(f"logged predictions lack features {missing}: the feature set changed")
    return frame[[*feature_names, "true_label", "feedback_ts"]]


def with_feedback(dataset: Dataset, config: Config) -> Dataset:
    """Append deduplicated labelled feedback to the base data and record the composition.

    `new_rows` counts feedback that arrived after the current champion was trained: the rows a
    drift- or accuracy-triggered retrain needs enough of.
    """
    names = [str(c) for c in dataset.features.columns]
    feedback = labelled_feedback(config, names)
    base_rows = len(dataset.features)
    composition: dict[str, object] = {"base_rows": base_rows, "feedback_rows": 0, "new_rows": 0}
    if feedback.empty:
        return Dataset(
            dataset.features, dataset.target, dataset.class_names, dataset.target_name, composition
        )
    extra = feedback.rename(columns={"true_label": dataset.target_name})
    extra = extra.drop_duplicates(subset=[*names, dataset.target_name])
    base = dataset.frame
    merged = pd.concat([base, extra[[*names, dataset.target_name]]], ignore_index=True)
    merged = merged.drop_duplicates(subset=[*names, dataset.target_name], ignore_index=True)
    added = len(merged) - base_rows
    since = champion_trained_at(config)
    kept_ts = extra["feedback_ts"].astype(float)
    new_rows = int((kept_ts > since).sum()) if since is not None else len(extra)
    composition.update(
        feedback_rows=added,
        new_rows=min(new_rows, added),
        feedback_from=float(kept_ts.min()),
        feedback_to=float(kept_ts.max()),
    )
    log.info("training data: %d base rows + %d feedback rows (%d new)", base_rows, added, new_rows)
    target = merged.pop(dataset.target_name).astype(int)
    return Dataset(merged, target, dataset.class_names, dataset.target_name, composition)
