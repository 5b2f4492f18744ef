"""Surviving mutants that are equivalent to the original code, each with the reason.

Keyed by (staged file, function, original line, mutated line), stripped, as `make mutation` prints
them: stable across runs and line moves, unlike mutmut's numbering.
"""

from __future__ import annotations

EQUIVALENT: dict[tuple[str, str, str, str], str] = {
    (
        "mlstack/gate.py",
        "_signed",
        'return f"{value:+.4f}" if value == 0 or abs(value) >= 1e-4 else f"{value:+.2g}"',
        'return f"{value:+.4f}" if value == 0 or abs(value) > 1e-4 else f"{value:+.2g}"',
    ): "the branches differ only at |value| == 1e-4, where both formats print ±0.0001",
}
