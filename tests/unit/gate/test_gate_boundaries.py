"""The gate at its boundaries: exactly at the floor, at the tolerance, at the required improvement.

The scores here are dyadic fractions (k / 2**n), so every sum and difference is exact in floating
point and "exactly at the boundary" means exactly that. `math.nextafter` gives the neighbouring score.
These tests pin what `make mutation` found unpinned (issue 17): a floor check moved by the tolerance,
`<` turned into `<=`, a verdict whose `promote` is None instead of False.
"""

from __future__ import annotations

import math

import pytest

from mlstack.config import GateConfig
from mlstack.gate import GateDecision, _signed, decide

# floor - tol = 0.6875, min_improvement - tol = 0.0625: all exact.
EXACT = GateConfig(floor=0.75, min_improvement=0.125, tolerance=0.0625)
DEFAULT = GateConfig()  # floor 0.85, tolerance 1e-6: the boundaries as users meet them


def below(x: float) -> float:
    return math.nextafter(x, -math.inf)


def above(x: float) -> float:
    return math.nextafter(x, math.inf)


def first_model(score: float, cfg: GateConfig = EXACT) -> GateDecision:
    return decide("f1_weighted", "1", score, None, None, cfg)


def against(
    challenger: float, champion: float, cfg: GateConfig = EXACT, same_inputs: bool = False
) -> GateDecision:
    return decide("f1_weighted", "5", challenger, "4", champion, cfg, same_inputs=same_inputs)


# -- the floor, with and without a champion ------------------------------------------------------


@pytest.mark.parametrize("cfg", [EXACT, DEFAULT], ids=["exact", "default"])
def test_a_score_at_the_floor_clears_it(cfg: GateConfig) -> None:
    assert first_model(cfg.floor, cfg).promote is True


@pytest.mark.parametrize("cfg", [EXACT, DEFAULT], ids=["exact", "default"])
def test_a_score_within_the_tolerance_below_the_floor_clears_it(cfg: GateConfig) -> None:
    at_tolerance = cfg.floor - cfg.tolerance
    decision = first_model(at_tolerance, cfg)
    assert decision.promote is True
    assert decision.reason == "no champion yet and the floor is cleared"


@pytest.mark.parametrize("cfg", [EXACT, DEFAULT], ids=["exact", "default"])
def test_a_score_just_beyond_the_tolerance_below_the_floor_is_refused(cfg: GateConfig) -> None:
    just_below = below(cfg.floor - cfg.tolerance)
    decision = first_model(just_below, cfg)
    assert decision.promote is False
    assert decision.reason == f"below floor: f1_weighted {just_below:.4f} < {cfg.floor:.4f}"


def test_the_floor_tolerance_is_one_tolerance_not_more() -> None:
    # Between floor - 2*tol and floor - tol: refused (a check moved by another tolerance would pass it).
    assert first_model(EXACT.floor - 1.5 * EXACT.tolerance).promote is False
    assert first_model(below(EXACT.floor - EXACT.tolerance)).promote is False


def test_the_floor_applies_before_the_champion_comparison() -> None:
    # Far better than the champion, but just below the floor band: refused, and says why.
    decision = against(below(EXACT.floor - EXACT.tolerance), 0.25)
    assert decision.promote is False and decision.reason.startswith("below floor:")
    # At the floor band's edge and well ahead of the champion: promoted.
    assert against(EXACT.floor - EXACT.tolerance, 0.25).promote is True


def test_a_zero_floor_accepts_a_zero_score() -> None:
    assert first_model(0.0, GateConfig(floor=0.0, tolerance=0.0)).promote is True
    assert first_model(-0.0, GateConfig(floor=0.0, tolerance=0.0)).promote is True


# -- the tolerance around the champion's score ---------------------------------------------------


def test_a_gain_of_exactly_the_tolerance_is_a_tie() -> None:
    decision = against(
        0.875 + EXACT.tolerance, 0.875, GateConfig(floor=0.5, min_improvement=0.0, tolerance=0.0625)
    )
    assert decision.tie is True and decision.promote is True
    assert decision.reason == "ties champion v4 (f1_weighted 0.9375) on new data or config (needs +0.0000)"


def test_a_gain_just_beyond_the_tolerance_is_not_a_tie() -> None:
    cfg = GateConfig(floor=0.5, min_improvement=0.0, tolerance=0.0625)
    decision = against(above(0.875 + cfg.tolerance), 0.875, cfg)
    assert decision.tie is False and decision.promote is True
    assert decision.reason == "beats champion v4 by +0.0625 (needs +0.0000)"


def test_a_loss_of_exactly_the_tolerance_is_a_tie_and_of_more_is_not() -> None:
    cfg = GateConfig(floor=0.5, min_improvement=0.0, tolerance=0.0625)
    assert against(0.875 - cfg.tolerance, 0.875, cfg).tie is True
    worse = against(below(0.875 - cfg.tolerance), 0.875, cfg)
    assert worse.tie is False and worse.promote is False
    assert worse.reason == "does not beat champion v4: -0.0625 (needs +0.0000)"


def test_a_tie_on_the_same_inputs_keeps_the_champion_at_the_tolerance_edge() -> None:
    cfg = GateConfig(floor=0.5, min_improvement=0.0, tolerance=0.0625)
    kept = against(0.875 + cfg.tolerance, 0.875, cfg, same_inputs=True)
    assert kept.promote is False and kept.tie is True and kept.same_inputs is True
    assert kept.reason == "same data and score as champion v4; kept v4"
    # One step beyond the tolerance it is a real gain: promoted even on the same inputs.
    assert against(above(0.875 + cfg.tolerance), 0.875, cfg, same_inputs=True).promote is True


# -- the required improvement ----------------------------------------------------------------------


def test_a_gain_of_exactly_the_required_improvement_less_the_tolerance_promotes() -> None:
    # The tolerance is smaller than the required improvement, so this boundary is not also a tie.
    cfg = GateConfig(floor=0.5, min_improvement=0.125, tolerance=0.03125)
    gain = cfg.min_improvement - cfg.tolerance  # 0.09375
    decision = against(0.75 + gain, 0.75, cfg)
    assert decision.promote is True and decision.tie is False
    assert decision.reason == "beats champion v4 by +0.0938 (needs +0.1250)"


def test_a_gain_just_short_of_the_required_improvement_keeps_the_champion() -> None:
    cfg = GateConfig(floor=0.5, min_improvement=0.125, tolerance=0.03125)
    decision = against(below(0.75 + cfg.min_improvement - cfg.tolerance), 0.75, cfg)
    assert decision.promote is False and decision.tie is False
    assert decision.reason == "does not beat champion v4: +0.0937 (needs +0.1250)"


def test_a_tie_short_of_the_required_improvement_keeps_the_champion_and_says_ties() -> None:
    decision = against(0.875, 0.875)
    assert decision.promote is False and decision.tie is True
    assert decision.reason == "ties champion v4 (f1_weighted 0.8750) (needs +0.1250)"


# -- the decision record -------------------------------------------------------------------------


def test_the_decision_records_every_input() -> None:
    decision = decide("accuracy", "9", 0.9375, "8", 0.75, EXACT, same_inputs=True)
    assert decision.to_dict() == {
        "promote": True,
        "reason": "beats champion v8 by +0.1875 (needs +0.1250)",
        "metric": "accuracy",
        "challenger_version": "9",
        "challenger_score": 0.9375,
        "champion_version": "8",
        "champion_score": 0.75,
        "floor": 0.75,
        "min_improvement": 0.125,
        "forced": False,
        "same_inputs": True,
        "tie": False,
    }


def test_not_forced_unless_asked() -> None:
    decision = decide("f1_weighted", "2", 0.25, None, None, EXACT)
    assert decision.forced is False and decision.promote is False


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, "+0.0000"),
        (-0.0, "-0.0000"),
        (1e-4, "+0.0001"),
        (-1e-4, "-0.0001"),
        (0.25, "+0.2500"),
        (3e-6, "+3e-06"),
        (-4.5e-5, "-4.5e-05"),
    ],
)
def test_a_score_difference_is_shown_with_four_decimals_or_two_digits(value: float, text: str) -> None:
    assert _signed(value) == text
