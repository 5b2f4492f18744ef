"""The promotion gate: the challenger and the champion scored on the same test set."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from mlstack.config import GateConfig


@dataclass(frozen=True)
class GateDecision:
    """Whether to promote, why, and the numbers behind it."""

    promote: bool
    reason: str
    metric: str
    challenger_version: str
    challenger_score: float
    champion_version: str | None
    champion_score: float | None
    floor: float
    min_improvement: float
    forced: bool = False
    # The challenger was trained on the champion's inputs (equal data and config hashes).
    same_inputs: bool = False
    # The scores differ by no more than `gate.tolerance`.
    tie: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _signed(value: float) -> str:
    """A score difference as text: 4 decimals, or 2 significant digits when smaller (never "+0.0000")."""
    return f"{value:+.4f}" if value == 0 or abs(value) >= 1e-4 else f"{value:+.2g}"


def decide(
    metric: str,
    challenger_version: str,
    challenger_score: float,
    champion_version: str | None,
    champion_score: float | None,
    gate: GateConfig,
    force: bool = False,
    *,
    same_inputs: bool = False,
) -> GateDecision:
    """Decide promotion.

    Promote when the challenger clears the floor and is at least `min_improvement` better than the
    champion (differences within `tolerance` count as equal), or clears the floor and there is no
    champion yet. A tie on the champion's own inputs (`same_inputs`: same data hash, feedback
    included, and same training config) keeps the champion: the run reproduced it, and moving the
    alias to an identical model would only add noise to the registry history. A tie on new data
    promotes (when `min_improvement` allows it), so the served model is the one fitted to the newest
    data. `force` promotes regardless and is recorded as such.
    """
    tol = gate.tolerance
    gain = challenger_score - champion_score if champion_score is not None else None
    tie = gain is not None and abs(gain) <= tol

    def verdict(promote: bool, reason: str) -> GateDecision:
        return GateDecision(
            promote,
            reason,
            metric,
            challenger_version,
            challenger_score,
            champion_version,
            champion_score,
            gate.floor,
            gate.min_improvement,
            forced=force,
            same_inputs=same_inputs,
            tie=tie,
        )

    if force:
        return verdict(True, "forced: gate overridden by --force")
    if challenger_score < gate.floor - tol:
        return verdict(False, f"below floor: {metric} {challenger_score:.4f} < {gate.floor:.4f}")
    if gain is None:
        return verdict(True, "no champion yet and the floor is cleared")
    champ = f"v{champion_version}"
    needed = f"(needs {gate.min_improvement:+.4f})"
    if tie and same_inputs:
        return verdict(False, f"same data and score as champion {champ}; kept {champ}")
    if gain >= gate.min_improvement - tol:
        if tie:
            score = f"{metric} {challenger_score:.4f}"
            return verdict(True, f"ties champion {champ} ({score}) on new data or config {needed}")
        return verdict(True, f"beats champion {champ} by {_signed(gain)} {needed}")
    if tie:
        return verdict(False, f"ties champion {champ} ({metric} {challenger_score:.4f}) {needed}")
    return verdict(False, f"does not beat champion {champ}: {_signed(gain)} {needed}")
