"""The drift simulator: sampling, patterns, the labelling rule, loopback-only targets, bounded runs."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from mlstack.config import load_config
from mlstack.data import load_base_dataset
from mlstack.simulate import (
    MAX_CONSECUTIVE_ERRORS,
    DriftSpec,
    SimulationError,
    TrafficGenerator,
    TrafficPlan,
    check_target,
    run_simulation,
)
from tests.support.net import free_port

DATASET = load_base_dataset(load_config(environ={}).data)
FEATURES = ("alcohol", "proline", "color_intensity")


def test_only_loopback_targets_unless_allowed() -> None:
    for url in ("http://127.0.0.1:7654", "http://localhost:1", "http://[::1]:7654", "http://127.0.0.2"):
        check_target(url)
    for url in (
        "http://10.0.0.5:7654",
        "http://0.0.0.0:7654",
        "http://predictor.internal",
        "http://192.168.1.2",
    ):
        with pytest.raises(SimulationError, match="not loopback"):
            check_target(url)
        check_target(url, allow_remote=True)
    for bad in ("ftp://127.0.0.1", "127.0.0.1:7654", "http://"):
        with pytest.raises(SimulationError, match="not an http"):
            check_target(bad, allow_remote=True)


def test_patterns_give_the_share_of_drifted_traffic() -> None:
    assert DriftSpec("none").share(50, 100) == 0
    sudden = DriftSpec("sudden", onset_s=10)
    assert (sudden.share(9.9, 100), sudden.share(10, 100), sudden.share(99, 100)) == (0, 1, 1)
    gradual = DriftSpec("gradual", onset_s=10)
    assert [gradual.share(t, 110) for t in (5, 10, 60, 110)] == [0, 0, 0.5, 1]
    assert DriftSpec("gradual", ramp_s=20).share(5, 100) == 0.25
    recurring = DriftSpec("recurring", period_s=10)
    assert [recurring.share(t, 100) for t in (0, 9, 10, 19, 20)] == [1, 1, 0, 0, 1]
    with pytest.raises(SimulationError, match="unknown pattern"):
        DriftSpec("sideways")  # type: ignore[arg-type]
    with pytest.raises(SimulationError):
        DriftSpec("recurring", period_s=0)


def test_clean_rows_look_like_the_base_data_and_drifted_rows_are_shifted() -> None:
    spec = DriftSpec("sudden", FEATURES, magnitude=3.0)
    generator = TrafficGenerator(DATASET, spec, noise=0.1, seed=1)
    base = DATASET.features
    std = base.std(ddof=0)

    clean = generator.sample(3000, 0.0)
    frame = np.array([[row[n] for n in generator.names] for row in clean.instances])
    assert not clean.drifted.any()
    # Per-class sampling with 0.1-std noise: means within a tenth of a std, classes in base proportions.
    assert np.allclose(frame.mean(axis=0), base.mean().to_numpy(), atol=0.1 * std.to_numpy().max())
    assert np.abs((frame.mean(axis=0) - base.mean().to_numpy()) / std.to_numpy()).max() < 0.1
    shares = np.bincount(clean.source_class, minlength=3) / 3000
    assert np.allclose(shares, np.bincount(DATASET.target) / len(DATASET.target), atol=0.03)
    assert (clean.true_label == clean.source_class).all()
    assert (frame >= 0).all()  # wine measurements are never negative

    drifted = generator.sample(3000, 1.0)
    moved = np.array([[row[n] for n in generator.names] for row in drifted.instances])
    shift = (moved.mean(axis=0) - frame.mean(axis=0)) / std.to_numpy()
    for name, value in zip(generator.names, shift, strict=True):
        assert value == pytest.approx(3.0, abs=0.15) if name in FEATURES else abs(value) < 0.15, name
    # Concept drift: the drifted region's true class is the next one.
    assert (drifted.true_label == (drifted.source_class + 1) % 3).all()
    assert generator.drifted_features == [n for n in generator.names if n in FEATURES]


def test_label_shift_zero_keeps_labels_and_bad_parameters_are_refused() -> None:
    keep = TrafficGenerator(DATASET, DriftSpec("sudden", FEATURES, label_shift=0), seed=2)
    batch = keep.sample(200, 1.0)
    assert (batch.true_label == batch.source_class).all()
    with pytest.raises(SimulationError, match="unknown feature"):
        TrafficGenerator(DATASET, DriftSpec("sudden", ("alcohol", "colour")))
    assert keep.plausibility_warning() is None
    far = TrafficGenerator(DATASET, DriftSpec("sudden", ("alcohol",), magnitude=12))
    assert "alcohol" in (far.plausibility_warning() or "")
    with pytest.raises(SimulationError, match="rate"):
        run_simulation("http://127.0.0.1:1", keep, TrafficPlan(rate=0, duration_s=1))
    with pytest.raises(SimulationError, match="duration"):
        run_simulation("http://127.0.0.1:1", keep, TrafficPlan(rate=1, duration_s=10**9))


def test_unreachable_predictor_fails_fast_and_bounded() -> None:
    generator = TrafficGenerator(DATASET, DriftSpec("none"), seed=3)
    # 6000 planned requests: it gives up after MAX_CONSECUTIVE_ERRORS failures, not after the 30 s.
    gave_up = f"every request.*\\({MAX_CONSECUTIVE_ERRORS} consecutive errors"
    with pytest.raises(SimulationError, match=gave_up):
        run_simulation(
            f"http://127.0.0.1:{free_port()}", generator, TrafficPlan(rate=200, duration_s=30), progress=None
        )


def test_cli_refuses_remote_targets_and_unknown_patterns() -> None:
    from mlstack.cli import app

    remote = CliRunner().invoke(app, ["simulate", "--url", "http://10.1.2.3:7654", "--duration", "1"])
    assert remote.exit_code == 2 and "not loopback" in remote.output
    sideways = CliRunner().invoke(app, ["simulate", "--pattern", "sideways", "--url", "http://127.0.0.1:1"])
    assert sideways.exit_code == 2 and "unknown pattern" in sideways.output
