"""The project's own progress lines: what a person running the pipeline reads on stdout.

The one place mlstack prints (ruff's T20 forbids `print` elsewhere), so how progress is shown can
change here alone; diagnostics go to `logging` (mlstack/logs.py).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

# While a pipeline stage's library output is diverted to the log file (mlstack.console), progress
# lines go through the stage reporter, which keeps them on the terminal next to its indicator.
_route: Callable[[str], None] | None = None


def report(line: str) -> None:
    """Print one progress line and flush it (the pipeline's output may be a pipe or Jenkins' log)."""
    if _route is not None:
        _route(line)
        return
    print(line, file=sys.stdout, flush=True)  # noqa: T201 - the one progress writer


def route_to(writer: Callable[[str], None] | None) -> None:
    """Send progress lines to `writer` instead of stdout (None: stdout again)."""
    global _route
    _route = writer
