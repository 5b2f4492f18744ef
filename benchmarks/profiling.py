"""Where a server's time goes under load: py-spy samples the process while wrk drives it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

TOP = 15


def py_spy() -> str | None:
    """The py-spy binary (next to this interpreter, or on PATH), or None."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def _frame_name(frame: str) -> str:
    """`function (path/to/module.py:123)` -> `function (module.py)`: group by function, not line."""
    name, _, where = frame.partition(" (")
    module = where.rsplit("/", 1)[-1].split(":", 1)[0]
    return f"{name} ({module})" if module else name


def summarize(collapsed: str, top: int = TOP) -> dict[str, Any]:
    """Self and inclusive sample shares per function from py-spy's collapsed (`--format raw`) stacks."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_name(f) for f in stack.split(";") if f and not f.startswith("process ")]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    if not total:
        return {"samples": 0}

    def share(counter: Counter[str]) -> list[list[Any]]:
        return [[name, round(n / total, 3)] for name, n in counter.most_common(top)]

    return {"samples": total, "self": share(own), "inclusive": share(inclusive)}


def profile_under_load(pid: int, load: Callable[[], Any], seconds: float, out: Path) -> dict[str, Any]:
    """Sample `pid` (and its children) with py-spy while `load()` runs; keep the raw stacks in `out`."""
    binary = py_spy()
    if binary is None:
        return {"error": "py-spy not installed (pip install py-spy)"}
    out.parent.mkdir(parents=True, exist_ok=True)
    # On-CPU samples only (no --idle): where the CPU time of every thread and worker goes.
    argv = [binary, "record", "--pid", str(pid), "--subprocesses", "--nonblocking", "--rate", "250",
            "--duration", str(max(1, round(seconds))), "--format", "raw", "--output", str(out)]  # fmt: skip
    spy = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        load()
        spy_out, _ = spy.communicate(timeout=seconds + 60)
    finally:
        if spy.poll() is None:
            spy.kill()
            spy.wait(timeout=10)
    if spy.returncode != 0 or not out.exists():
        return {"error": f"py-spy failed ({spy.returncode}): {(spy_out or '').strip()[-500:]}"}
    return {"raw_stacks": out.name, **summarize(out.read_text())}
