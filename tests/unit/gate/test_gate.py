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


@pytest.mark.parametrize(("challenger", "champion"), [(0.1, 0.99), (0.5, None)])
def test_force_overrides_and_is_recorded(challenger: float, champion: float | None) -> None:
    decision = gate(challenger, champion, force=True)
    assert decision.promote and decision.forced and "forced" in decision.reason
    assert decision.to_dict()["forced"] is True


# -- ties: the same inputs keep the champion, new data promotes (issue 18, no churn) --------------

AT_LEAST_AS_GOOD = GateConfig(floor=0.85, min_improvement=0.0, tolerance=1e-6)


def tie_gate(challenger: float, champion: float, *, same_inputs: bool, force: bool = False) -> GateDecision:
    return decide(
        "f1_weighted", "3", challenger, "2", champion, AT_LEAST_AS_GOOD, force, same_inputs=same_inputs
    )


def test_a_tie_on_the_same_inputs_keeps_the_champion_and_says_so() -> None:
    decision = tie_gate(0.97, 0.97 + 1e-9, same_inputs=True)
    assert not decision.promote
    assert decision.tie and decision.same_inputs
    assert decision.reason == "same data and score as champion v2; kept v2"


def test_a_tie_on_new_data_promotes_and_says_it_ties() -> None:
    decision = tie_gate(0.97, 0.97, same_inputs=False)
    assert decision.promote and decision.tie and not decision.same_inputs
    assert "ties champion v2" in decision.reason and "new data" in decision.reason
    assert "beats" not in decision.reason


def test_strictly_better_on_the_same_inputs_still_promotes() -> None:
    # Same data and config but a better score: the code changed (a fix, a new library); take it.
    decision = tie_gate(0.99, 0.97, same_inputs=True)
    assert decision.promote and not decision.tie
    assert decision.reason == "beats champion v2 by +0.0200 (needs +0.0000)"


def test_worse_keeps_the_champion_whatever_the_inputs() -> None:
    for same in (True, False):
        decision = tie_gate(0.95, 0.97, same_inputs=same)
        assert not decision.promote and not decision.tie
        assert decision.reason == "does not beat champion v2: -0.0200 (needs +0.0000)"


def test_forced_promotes_even_a_tie_on_the_same_inputs() -> None:
    decision = tie_gate(0.97, 0.97, same_inputs=True, force=True)
    assert decision.promote and decision.forced and decision.reason.startswith("forced")


def test_a_tie_short_of_the_required_improvement_says_ties_not_beats() -> None:
    decision = gate(0.93, 0.93)  # min_improvement 0.01
    assert not decision.promote and decision.tie
    assert decision.reason == "ties champion v1 (f1_weighted 0.9300) (needs +0.0100)"


@pytest.mark.parametrize("gain", [0.0, 5e-7, -5e-7, 1e-6 - 1e-12])
@pytest.mark.parametrize("same_inputs", [True, False])
def test_no_reason_claims_a_zero_win(gain: float, same_inputs: bool) -> None:
    reason = tie_gate(0.97 + gain, 0.97, same_inputs=same_inputs).reason
    assert "+0.0000 (" not in reason.replace("(needs +0.0000)", "")
    assert "beats" not in reason
    assert ("same data and score" in reason) if same_inputs else ("ties" in reason)


def test_a_gain_just_beyond_the_tolerance_is_shown_with_its_digits() -> None:
    decision = tie_gate(0.97 + 3e-6, 0.97, same_inputs=True)
    assert decision.promote and not decision.tie
    assert "+3e-06" in decision.reason and "+0.0000 (" not in decision.reason.replace("(needs +0.0000)", "")
