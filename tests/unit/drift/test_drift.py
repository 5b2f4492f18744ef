"""mlstack.drift: Evidently drift verdicts on wine-like data (real Evidently, no mocks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlstack.config import DataConfig
from mlstack.data import load_base_dataset
from mlstack.drift import DriftSampling, compute_drift, write_html_report, write_placeholder_report


@pytest.fixture(scope="module")
def wine() -> pd.DataFrame:
    dataset = load_base_dataset(DataConfig())
    return dataset.features.assign(prediction=dataset.target.to_numpy())


def _sample(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    return frame.sample(rows, replace=True, random_state=seed).reset_index(drop=True)


def test_same_distribution_is_not_drift(wine: pd.DataFrame) -> None:
    features = [c for c in wine.columns if c != "prediction"]
    result = compute_drift(_sample(wine, 500, 1), _sample(wine, 1000, 2), features, threshold=0.5)
    assert not result.dataset_drift
    assert result.share_drifted < 0.5
    assert set(result.features) == set(features)
    assert result.prediction is not None and not result.prediction.drifted
    assert result.current_rows == 1000 and result.reference_rows == 500


def test_one_shifted_feature_crosses_its_threshold(wine: pd.DataFrame) -> None:
    features = [c for c in wine.columns if c != "prediction"]
    current = _sample(wine, 1000, 3)
    current["alcohol"] += 3 * wine["alcohol"].std()
    # With a low share threshold one drifted feature of 13 is dataset drift.
    result = compute_drift(_sample(wine, 500, 1), current, features, threshold=0.05)
    alcohol = result.features["alcohol"]
    assert alcohol.drifted
    assert "p_value" in alcohol.method and alcohol.score < alcohol.threshold
    assert result.dataset_drift
    assert result.drifted_count >= 1
    assert result.features["proline"].score > result.features["proline"].threshold


def test_predicted_class_drift_is_reported_separately(wine: pd.DataFrame) -> None:
    features = [c for c in wine.columns if c != "prediction"]
    current = _sample(wine, 1000, 4)
    current["prediction"] = 0  # the model suddenly predicts one class only
    result = compute_drift(_sample(wine, 500, 1), current, features, threshold=0.5)
    assert result.prediction is not None and result.prediction.drifted
    assert not result.dataset_drift  # features unchanged: the share counts features only


def test_large_frames_are_sampled_down(wine: pd.DataFrame) -> None:
    features = [c for c in wine.columns if c != "prediction"]
    result = compute_drift(
        _sample(wine, 3000, 1),
        _sample(wine, 5000, 2),
        features,
        0.5,
        sampling=DriftSampling(max_reference_rows=800, max_current_rows=2000),
    )
    assert result.reference_rows == 800
    assert result.current_rows == 5000 and result.sampled_current_rows == 2000


def test_preset_gives_the_same_verdicts(wine: pd.DataFrame) -> None:
    features = [c for c in wine.columns if c != "prediction"]
    current = _sample(wine, 600, 3)
    current["alcohol"] += 3 * wine["alcohol"].std()
    fast = compute_drift(_sample(wine, 300, 1), current, features, threshold=0.05)
    full = compute_drift(_sample(wine, 300, 1), current, features, threshold=0.05, preset=True)
    assert fast.features == full.features
    assert fast.prediction == full.prediction
    assert (fast.dataset_drift, fast.share_drifted) == (full.dataset_drift, full.share_drifted)


@pytest.mark.parametrize(
    ("reference_rows", "current_rows", "features", "threshold", "message"),
    [
        (100, 0, ["alcohol"], 0.5, "rows on both sides"),
        (100, 100, ["no_such_feature"], 0.5, "no_such_feature"),
        (100, 100, [], 0.5, "feature_names is empty"),
        (100, 100, ["alcohol"], 1.5, "between 0 and 1"),
    ],
)
def test_bad_input_is_a_clear_error(
    wine: pd.DataFrame,
    reference_rows: int,
    current_rows: int,
    features: list[str],
    threshold: float,
    message: str,
) -> None:
    with pytest.raises(ValueError, match=message):
        compute_drift(_sample(wine, reference_rows, 1), wine.head(current_rows), features, threshold)


def test_html_report_is_written_atomically(wine: pd.DataFrame, tmp_path: Path) -> None:
    features = [c for c in wine.columns if c != "prediction"]
    result = compute_drift(_sample(wine, 300, 1), _sample(wine, 300, 2), features, 0.5)
    path = write_html_report(result, tmp_path / "reports" / "drift.html")
    html = path.read_text()
    assert "<html" in html.lower() and "alcohol" in html
    assert [p.name for p in path.parent.iterdir()] == ["drift.html"]
    placeholder = write_placeholder_report(tmp_path / "p.html", "Drift: insufficient data", "12 rows < 100")
    assert "12 rows &lt; 100" in placeholder.read_text()


def test_without_prediction_column(wine: pd.DataFrame) -> None:
    features = [c for c in wine.columns if c != "prediction"]
    rng = np.random.default_rng(0)
    current = _sample(wine, 400, 5)[features] * rng.normal(1.0, 0.001, size=(400, len(features)))
    result = compute_drift(_sample(wine, 400, 1)[features], current, features, 0.5)
    assert result.prediction is None
    assert not result.dataset_drift
