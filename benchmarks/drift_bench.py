"""Drift check duration: `mlstack.drift.compute_drift` on 1k / 10k / 100k-row prediction windows."""

from __future__ import annotations

import statistics
import time
from typing import Any

import pandas as pd

from benchmarks.common import Target
from mlstack.config import DataConfig
from mlstack.data import load_base_dataset
from mlstack.drift import compute_drift

WINDOWS = (1_000, 10_000, 100_000)
QUICK_WINDOWS = (1_000, 10_000)
TARGET_ROWS = 100_000
TARGET_S = 5.0
REFERENCE_ROWS = 500  # data.reference_sample_rows: what training logs as the drift reference


def frames(rows: int) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """A reference sample as training logs it and a live window of `rows` with one shifted feature."""
    dataset = load_base_dataset(DataConfig())
    features = dataset.features
    reference = features.sample(REFERENCE_ROWS, replace=True, random_state=0).assign(
        prediction=dataset.target.sample(REFERENCE_ROWS, replace=True, random_state=0).to_numpy()
    )
    current = features.sample(rows, replace=True, random_state=1).reset_index(drop=True)
    current["alcohol"] += features["alcohol"].std()
    current["prediction"] = dataset.target.sample(rows, replace=True, random_state=1).to_numpy()
    return reference.reset_index(drop=True), current, [str(c) for c in features.columns]


def time_window(rows: int, repeats: int) -> dict[str, Any]:
    reference, current, names = frames(rows)
    durations = []
    result = None
    for _ in range(repeats):
        started = time.perf_counter()
        result = compute_drift(reference, current, names, threshold=0.5)
        durations.append(time.perf_counter() - started)
    assert result is not None
    return {
        "rows": rows,
        "repeats": repeats,
        "median_s": round(statistics.median(durations), 3),
        "max_s": round(max(durations), 3),
        "alcohol_drifted": bool(result.features["alcohol"].drifted),
    }


def run(quick: bool) -> dict[str, Any]:
    windows = QUICK_WINDOWS if quick else WINDOWS
    reference, current, names = frames(100)
    compute_drift(reference, current, names, threshold=0.5)  # imports and first-call costs, untimed
    measured = [time_window(rows, repeats=1 if quick or rows >= TARGET_ROWS else 3) for rows in windows]
    result: dict[str, Any] = {"benchmark": "drift", "quick": quick, "windows": measured}
    largest = measured[-1]
    goal = f"<= {TARGET_S:.0f} s at {TARGET_ROWS:,} rows"
    result["targets"] = [
        Target(
            f"drift check, {largest['rows']:,}-row window",
            goal if largest["rows"] == TARGET_ROWS else f"{goal} (quick: measured at {largest['rows']:,})",
            f"{largest['max_s']:.2f} s",
            largest["max_s"] <= TARGET_S,
        ).as_dict()
    ]
    return result


def table(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    columns = ["window rows", "compute_drift median s", "max s", "repeats", "shift detected"]
    rows = [
        [
            f"{w['rows']:,}",
            f"{w['median_s']:.3f}",
            f"{w['max_s']:.3f}",
            str(w["repeats"]),
            str(w["alcohol_drifted"]),
        ]
        for w in result["windows"]
    ]
    return columns, rows
