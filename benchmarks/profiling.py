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
#: Where the predictor's time goes: label -> a frame that marks it (inclusive; labels may nest).
PREDICTOR_BUCKETS = {
    "prediction-log writer thread": "PredictionLogWriter._run (",
    "  writer: json.dumps per record (as_row)": "as_row (",
    "  writer: SQLite execute": "do_execute (",
    "  writer: SQLite commit": "do_commit (",
    "request handler (predict)": "predict (mlstack_api/routes.py",
    "  body parse + validation": "parse_instances (",
    "  ONNX Runtime / sklearn call": "predict_proba (mlstack_api/model.py",
    "  prediction ids (secrets.token_hex)": "token_hex (",
    "  log records + buffer append": "submit (",
    "uvicorn response send (socket writes)": "RequestResponseCycle.send (",
    "request metrics middleware": "observe_request (",
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


def summarize(collapsed: str, top: int = TOP, buckets: dict[str, str] | None = None) -> dict[str, Any]:
    """Self and inclusive sample shares per function from py-spy's collapsed (`--format raw`) stacks.

    `buckets` maps a label to a frame marker: the share of samples whose stack contains it.
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
        for label, marker in (buckets or {}).items():
            if marker in stack:
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
    pid: int, load: Callable[[], Any], seconds: float, out: Path, buckets: dict[str, str] | None = None
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
