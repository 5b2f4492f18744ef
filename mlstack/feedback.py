"""Training on new data: the base dataset plus the usable labelled feedback from the prediction store.

Labelled rows pass the quarantine check (`mlstack.quarantine`) one by one: a row that cannot be trained
on is left out and counted, so bad feedback never stops the loop; only base-data errors fail a stage.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import pandas as pd

from mlstack import contract, registry
from mlstack.config import Config
from mlstack.data import Dataset
from mlstack.feature_types import infer_schema, with_overrides
from mlstack.quarantine import FeedbackCheck, check_rows, decisions, labelled_rows, record_check
from mlstack.schema import FeatureSchema
from mlstack.store import PredictionStore

log = logging.getLogger(__name__)

# When a row was observed (its prediction's time), for the drift reference of the rows fitted most
# recently; base rows have none.
OBSERVED_AT = "observed_at"


def store_exists(url: str) -> bool:
    return not url.startswith("sqlite:///") or Path(url.removeprefix("sqlite:///")).exists()


def champion_trained_at(config: Config) -> float | None:
    """When the current champion version was created (epoch seconds), or None."""
    champ = registry.champion_version(registry.make_client(config), config)
    return champ.creation_timestamp / 1000.0 if champ is not None else None


def check_feedback(
    config: Config,
    dataset: Dataset,
    schema: FeatureSchema | None,
    *,
    record_as: str | None = None,
) -> FeedbackCheck:
    """Every labelled prediction in the store, checked against `schema` (or the base data's ranges).

    Args:
        config: where the store is.
        dataset: the base data (its classes are the labels training knows).
        schema: the champion's feature schema; None before the first champion.
        record_as: a pipeline id to record the verdicts in the quarantine table under (validate-data);
            None only reads (train and gate repeat the same check).
    """
    names = [str(c) for c in dataset.features.columns]
    if schema is None or set(schema.feature_names) != set(names):
        # No champion yet, or the feature set changed (validation reports that for the base data):
        # hold feedback to the base data's own schema.
        schema = infer_schema(
            dataset.features, dataset.target, dataset.class_names, dataset.target_name, config.data
        )
    else:
        schema = with_overrides(schema, config.data)  # as validate-data holds the base data
    labels = set(range(len(dataset.class_names)))
    url = config.prediction_store_url
    if not store_exists(url):
        return check_rows([], schema, labels)
    store = PredictionStore(url)
    try:
        store.create_schema()
        check = check_rows(labelled_rows(store), schema, labels, decisions(store))
        if record_as is not None:
            added, released = record_check(store, check, record_as)
            if added or released:
                log.info("feedback quarantine: %d rows added, %d released", added, released)
    finally:
        store.dispose()
    return check


def with_feedback(
    dataset: Dataset,
    config: Config,
    schema: FeatureSchema | Literal["champion"] | None = "champion",
    *,
    record_as: str | None = None,
) -> Dataset:
    """Append the usable, deduplicated labelled feedback to the base data and record the composition.

    Feedback is held to `schema`'s ranges: by default the champion's (looked up), as validate-data
    holds the base data; None uses the base data's own.

    `new_rows` counts usable feedback that arrived after the current champion was trained: the rows a
    drift- or accuracy-triggered retrain needs enough of (quarantined rows never count).
    `feedback_rows` are the rows added (used), `feedback_excluded` the rows quarantined, and
    `feedback_duplicates` the usable rows left out as copies of rows already in the data (so every
    labelled row is accounted for in the stage line).
    """
    names = [str(c) for c in dataset.features.columns]
    if schema == "champion":
        from mlstack.console import no_progress_bars

        with no_progress_bars():  # an MLmodel file: no "Downloading artifacts" bar for it
            schema = registry.champion_schema(registry.make_client(config), config)
    check = check_feedback(config, dataset, schema, record_as=record_as)
    base_rows = len(dataset.features)
    composition: dict[str, object] = {
        "base_rows": base_rows,
        contract.COMPOSITION_FEEDBACK_USED: 0,
        contract.COMPOSITION_FEEDBACK_EXCLUDED: len(check.excluded),
        contract.COMPOSITION_FEEDBACK_DUPLICATES: 0,
        "new_rows": 0,
    }
    observed = pd.Series([float("nan")] * base_rows, dtype="float64")
    if check.usable.empty:
        log.info("training data: %d base rows; feedback %s", base_rows, check.summary())
        return Dataset(
            dataset.features,
            dataset.target,
            dataset.class_names,
            dataset.target_name,
            composition,
            ids=dataset.ids,
            observed_at=observed,
        )
    extra = check.usable.rename(columns={"true_label": dataset.target_name})
    extra = extra.drop_duplicates(subset=[*names, dataset.target_name])
    base = dataset.frame.assign(**{OBSERVED_AT: observed})
    added_rows = extra[[*names, dataset.target_name]].assign(**{OBSERVED_AT: extra["ts"].astype(float)})
    merged = pd.concat([base, added_rows], ignore_index=True)
    merged = merged.drop_duplicates(subset=[*names, dataset.target_name], ignore_index=True)
    added = len(merged) - base_rows
    since = champion_trained_at(config)
    kept_ts = extra["feedback_ts"].astype(float)
    new_rows = int((kept_ts > since).sum()) if since is not None else len(extra)
    composition.update(
        {
            contract.COMPOSITION_FEEDBACK_USED: added,
            contract.COMPOSITION_FEEDBACK_DUPLICATES: len(check.usable) - added,
            "new_rows": min(new_rows, added),
            "feedback_from": float(kept_ts.min()),
            "feedback_to": float(kept_ts.max()),
        }
    )
    log.info(
        "training data: %d base rows + %d feedback rows (%d new); feedback %s",
        base_rows,
        added,
        new_rows,
        check.summary(),
    )
    observed_at = merged.pop(OBSERVED_AT)
    target = merged.pop(dataset.target_name).astype(int)
    return Dataset(
        merged, target, dataset.class_names, dataset.target_name, composition, observed_at=observed_at
    )
