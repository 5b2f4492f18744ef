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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(
    metric: str,
    challenger_version: str,
    challenger_score: float,
    champion_version: str | None,
    champion_score: float | None,
    gate: GateConfig,
    force: bool = False,
) -> GateDecision:
    """Decide promotion.

    Promote when the challenger clears the floor and is at least `min_improvement` better than the
    champion (differences within `tolerance` count as equal), or clears the floor and there is no
    champion yet. `force` promotes regardless and is recorded as such.
    """
    tol = gate.tolerance

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
        )

    if force:
        return verdict(True, "forced: gate overridden by --force")
    if challenger_score < gate.floor - tol:
        return verdict(False, f"below floor: {metric} {challenger_score:.4f} < {gate.floor:.4f}")
    if champion_score is None:
        return verdict(True, "no champion yet and the floor is cleared")
    gain = challenger_score - champion_score
    needed = f"(needs {gate.min_improvement:+.4f})"
    if gain >= gate.min_improvement - tol:
        return verdict(True, f"beats champion v{champion_version} by {gain:+.4f} {needed}")
    return verdict(False, f"does not beat champion v{champion_version}: {gain:+.4f} {needed}")
