"""Reading the drift window from the prediction store: count it, and load a bounded sample of it."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa

from mlstack.store import PredictionStore, predictions


@dataclass(frozen=True)
class WindowSample:
    """The newest `size` predictions: how many exist, and up to `sample` of them as a frame."""

    rows: int  # predictions in the window (<= the configured size)
    frame: pd.DataFrame  # feature columns + `prediction` + `model_version`, at most `sample` rows


def read_window(store: PredictionStore, size: int, sample: int) -> WindowSample:
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
    frame["prediction"] = pd.Series([r.prediction for r in records], dtype="int64")
    frame["model_version"] = pd.Series([r.model_version for r in records], dtype="object")
    return WindowSample(rows=total, frame=frame)
