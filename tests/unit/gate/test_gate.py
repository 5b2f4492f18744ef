"""Every gate decision path."""

from __future__ import annotations

import pytest

from mlstack.config import GateConfig
from mlstack.gate import GateDecision, decide

GATE = GateConfig(floor=0.85, min_improvement=0.01, tolerance=1e-6)


def gate(
    challenger: float, champion: float | None, force: bool = False, cfg: GateConfig = GATE
) -> GateDecision:
    return decide("f1_weighted", "2", challenger, "1" if champion is not None else None, champion, cfg, force)


def test_no_champion_promotes_when_the_floor_is_cleared() -> None:
    decision = gate(0.9, None)
    assert decision.promote and "no champion" in decision.reason


def test_no_champion_below_floor_is_refused() -> None:
    decision = gate(0.5, None)
    assert not decision.promote and "below floor" in decision.reason


def test_better_by_the_minimum_promotes() -> None:
    decision = gate(0.95, 0.93)
    assert decision.promote and decision.champion_score == 0.93 and decision.challenger_score == 0.95


def test_worse_keeps_the_champion() -> None:
    decision = gate(0.90, 0.93)
    assert not decision.promote and "does not beat" in decision.reason


def test_better_but_not_by_the_minimum_keeps_the_champion() -> None:
    assert not gate(0.935, 0.93).promote


def test_equal_within_tolerance_counts_as_equal() -> None:
    at_least_as_good = GateConfig(floor=0.85, min_improvement=0.0, tolerance=1e-6)
    assert gate(0.93 - 1e-9, 0.93, cfg=at_least_as_good).promote
    assert not gate(0.93 - 1e-3, 0.93, cfg=at_least_as_good).promote
    # exactly the minimum improvement, up to float noise, passes
    assert gate(0.94 - 1e-12, 0.93).promote


def test_below_floor_even_if_better_than_champion() -> None:
    assert not gate(0.84, 0.70).promote


@pytest.mark.parametrize("challenger, champion", [(0.1, 0.99), (0.5, None)])
def test_force_overrides_and_is_recorded(challenger: float, champion: float | None) -> None:
    decision = gate(challenger, champion, force=True)
    assert decision.promote and decision.forced and "forced" in decision.reason
    assert decision.to_dict()["forced"] is True
