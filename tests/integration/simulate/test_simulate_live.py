"""The drift simulator against the real predictor: predictions and labels land in its store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlstack import registry
from mlstack.config import load_config
from mlstack.data import load_base_dataset
from mlstack.simulate import DriftSpec, TrafficGenerator, TrafficPlan, probe_accuracy, run_simulation
from mlstack.store import PredictionStore
from tests.support.pipeline import TrainedRegistry, isolated_config
from tests.support.services import run_api

DATASET = load_base_dataset(load_config(environ={}).data)
FEATURES = ("alcohol", "proline", "color_intensity")


@pytest.mark.integration
def test_drifted_labelled_traffic_reaches_the_real_predictor_and_store(
    trained_registry: TrainedRegistry, tmp_path: Path
) -> None:
    """Real predictor on the session's trained champion; predictions and feedback land in its store."""
    fast: dict[str, Any] = {"api.reload_interval_s": 1}
    config = isolated_config(trained_registry.tracking_uri, tmp_path / "state", **fast)
    generator = TrafficGenerator(DATASET, DriftSpec("sudden", FEATURES, onset_s=1.0), seed=4)
    # Other tests on the session's registry move the champion: compare with whoever holds it now.
    champion = registry.champion_version(registry.make_client(config), config)
    assert champion is not None
    with run_api(config, tmp_path / "api") as api:
        clean_accuracy = probe_accuracy(api.url, generator, 200, drifted_share=0.0)
        lines: list[str] = []
        # Bounded by count (60 requests, paced at 20/s: the last is sent >= 2.95 s in, after the drift
        # onset and two progress ticks), with a generous time bound in case the machine is slow.
        plan = TrafficPlan(
            rate=20,
            duration_s=60,
            max_requests=60,
            batch_size=4,
            feedback_delay_s=0.5,
            feedback_token=api.feedback_token,
        )
        report = run_simulation(
            api.url,
            generator,
            plan,
            progress=lines.append,
            progress_every_s=1,
        )
    assert report.requests == report.instances / 4 == 60
    assert report.elapsed_s >= 59 / 20  # paced, not sent as fast as possible
    assert report.errors == 0 and report.feedback_failed == 0
    assert report.feedback_sent == report.instances
    assert 0 < report.drifted < report.instances  # clean for the first second, then drifted
    assert list(report.versions) == [champion.version]
    assert len(lines) >= 3 and "drifted_accuracy=" in lines[-1]
    # The champion knows the clean concept; the drifted rows' rotated labels make it wrong there.
    assert clean_accuracy > 0.9
    assert report.drifted_accuracy is not None and report.drifted_accuracy < 0.5

    store = PredictionStore(config.prediction_store_url)
    try:
        labelled = store.labelled()
    finally:
        store.dispose()
    assert len(labelled) == report.feedback_sent
    drifted_rows = labelled[labelled["alcohol"] > DATASET.features["alcohol"].max()]
    assert len(drifted_rows) > 0
