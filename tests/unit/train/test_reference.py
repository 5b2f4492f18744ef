"""The drift reference logged with a model: its most recent training rows (`recent`), or a random sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mlstack.data import Dataset, load_base_dataset, split
from mlstack.train import reference_rows
from tests.support.pipeline import isolated_config

CONFIG = isolated_config("http://127.0.0.1:9", Path("/nonexistent"))
BASE = load_base_dataset(CONFIG.data)


def with_feedback_rows(count: int) -> Dataset:
    """Base rows (untimed) plus `count` shifted feedback rows observed at t = 1000, 1001, ..."""
    extra = BASE.features.sample(count, replace=True, random_state=1).reset_index(drop=True) + 100.0
    labels = BASE.target.sample(count, replace=True, random_state=1).reset_index(drop=True)
    features = pd.concat([BASE.features, extra], ignore_index=True)
    target = pd.concat([BASE.target, labels], ignore_index=True)
    observed = pd.Series([np.nan] * len(BASE.features) + [1000.0 + i for i in range(count)])
    return Dataset(features, target, BASE.class_names, "target", observed_at=observed)


def test_recent_takes_the_newest_training_rows_by_time() -> None:
    data = with_feedback_rows(600)
    parts = split(data, CONFIG)
    chosen = reference_rows(parts, 200, seed=0, mode="recent", observed_at=data.observed_at)
    assert len(chosen) == 200 and set(chosen) <= set(parts.x_train.index)
    times = data.observed_at.loc[chosen]  # type: ignore[union-attr]
    assert times.notna().all()
    older_training_feedback = data.observed_at.loc[parts.x_train.index].dropna()  # type: ignore[union-attr]
    assert times.min() >= older_training_feedback.sort_values().iloc[-200]
    # They are the drifted rows: the reference stands for what the model was fitted to last.
    assert (parts.x_train.loc[chosen, "alcohol"] > 50).all()


def test_recent_fills_up_with_base_rows_when_few_are_timed() -> None:
    data = with_feedback_rows(20)
    parts = split(data, CONFIG)
    chosen = reference_rows(parts, 100, seed=0, mode="recent", observed_at=data.observed_at)
    timed = data.observed_at.loc[chosen].notna()  # type: ignore[union-attr]
    assert len(chosen) == 100 and len(set(chosen)) == 100
    assert int(timed.sum()) == int(data.observed_at.loc[parts.x_train.index].notna().sum())  # type: ignore[union-attr]
    # Deterministic: the same data and seed give the same reference.
    assert list(chosen) == list(
        reference_rows(parts, 100, seed=0, mode="recent", observed_at=data.observed_at)
    )


def test_random_and_untimed_data_sample_all_training_rows() -> None:
    data = with_feedback_rows(600)
    parts = split(data, CONFIG)
    chosen = reference_rows(parts, 200, seed=0, mode="random", observed_at=data.observed_at)
    drifted = (parts.x_train.loc[chosen, "alcohol"] > 50).mean()
    assert 0.5 < drifted < 0.95  # a mix, like the training data (about 600 of 778 rows are drifted)
    base_parts = split(BASE, CONFIG)
    assert len(reference_rows(base_parts, 500, seed=0, mode="recent", observed_at=None)) == len(
        base_parts.x_train
    )
