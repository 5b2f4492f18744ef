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
#: Where the predictor's time goes: label -> frames that mark it (inclusive; labels may nest). Each
#: label lists the frame of the code before and after issue 14's group commit, so old and new
#: profiles read alike.
PREDICTOR_BUCKETS: dict[str, tuple[str, ...]] = {
    "prediction log: commits (writer thread, or the event loop for SQLite)": (
        "PredictionLogWriter._run (",
        "PredictionLogWriter._flush (",
    ),
    "  writer thread: waiting for rows / waking (Condition.wait)": ("PredictionLogWriter._take (",),
    "  rows to JSON (orjson)": ("as_row (", "PredictionRows.json_columns ("),
    "  insert + commit (SQLite / PostgreSQL driver)": ("do_execute (", "do_commit (", "LogAppender.append ("),
    "prediction log: WAL checkpoints (SQLite, own thread)": ("WalCheckpointer.",),
    "request handler (predict)": ("predict (mlstack_api/routes.py",),
    "  body parse + validation": ("parse_instances (", "validate_batch ("),
    "  ONNX Runtime / sklearn call": ("predict_proba (mlstack_api/model.py",),
    "  prediction ids": ("token_hex (", "prediction_ids ("),
    "  response items": ("Scored.response_items (",),
    "  log hand-off (submit / await commit)": ("submit (", "PredictionLogWriter.write ("),
    "uvicorn response send (socket writes)": ("RequestResponseCycle.send (",),
    "request metrics middleware": ("observe_request (",),
}


def py_spy() -> str | None:
    """The py-spy binary (next to this interpreter, or on PATH), or None."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def _frame_name(frame: str) -> str:
    """`function (path/to/module.py:123)` -> `function (module.py)`: group by function, not line."""
    name, _, where = frame.partition(" (")
    module = where.rsplit("/", 1)[-1].split(":", 1)[0]
    return f"{name} ({module})" if module else name


def summarize(
    collapsed: str, top: int = TOP, buckets: dict[str, tuple[str, ...]] | None = None
) -> dict[str, Any]:
    """Self and inclusive sample shares per function from py-spy's collapsed (`--format raw`) stacks.

    `buckets` maps a label to frame markers: the share of samples whose stack contains any of them.
    """
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    marked: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        for label, markers in (buckets or {}).items():
            if any(marker in stack for marker in markers):
                marked[label] += count
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

    summary: dict[str, Any] = {"samples": total, "self": share(own), "inclusive": share(inclusive)}
    if buckets:
        summary["buckets"] = [[label, round(marked[label] / total, 3)] for label in buckets]
    return summary


def profile_under_load(
    pid: int,
    load: Callable[[], Any],
    seconds: float,
    out: Path,
    buckets: dict[str, tuple[str, ...]] | None = None,
) -> dict[str, Any]:
    """Sample `pid` (and its children) with py-spy while `load()` runs; keep the raw stacks in `out`."""
    binary = py_spy()
    if binary is None:
        return {"error": "py-spy not installed (pip install py-spy)"}
    out.parent.mkdir(parents=True, exist_ok=True)
    # Non-idle samples only (no --idle): where every thread and worker is busy (GIL-released work included).
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
    return {"raw_stacks": out.name, **summarize(out.read_text(), buckets=buckets)}
