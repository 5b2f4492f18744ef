"""The project's own progress lines: what a person running the pipeline reads on stdout.

The one place mlstack prints (ruff's T20 forbids `print` elsewhere), so how progress is shown can
change here alone; diagnostics go to `logging` (mlstack/logs.py).
"""

from __future__ import annotations

import sys


def report(line: str) -> None:
    """Print one progress line and flush it (the pipeline's output may be a pipe or Jenkins' log)."""
    print(line, file=sys.stdout, flush=True)  # noqa: T201 - the one progress writer
