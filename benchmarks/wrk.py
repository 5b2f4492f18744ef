"""Load generation with Debian's `wrk` from a separate process: POST a JSON body, read percentiles."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

POST_SCRIPT = Path(__file__).with_name("lua") / "post.lua"
MARKER = "WRK_JSON "


class WrkError(RuntimeError):
    """wrk is missing, failed, or the server answered with errors."""


@dataclass(frozen=True)
class LoadResult:
    """One load point: closed-loop throughput and latency percentiles."""

    connections: int
    seconds: float
    requests: int
    rows_per_request: int
    requests_per_s: float
    rows_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    refused: int = 0  # non-2xx answers (e.g. 503 backpressure); excluded from requests/rows per second

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def wrk_binary() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise WrkError("wrk is not on PATH: install Debian's wrk package (apt-get install wrk)")
    return path


def post_load(
    url: str,
    body: bytes,
    rows: int,
    connections: int,
    seconds: float,
    threads: int = 1,
    allow_refusals: bool = False,
) -> LoadResult:
    """POST `body` to `url` for `seconds` with `connections` keep-alive connections.

    One wrk thread by default: on a small machine a second load thread only takes CPU from the
    server under test. Socket errors fail the point; non-2xx answers fail it too unless
    `allow_refusals`, in which case they are counted as `refused` and only 2xx answers count as
    throughput (latency percentiles still include them: wrk does not split them).
    """
    if not url.startswith("http://127.0.0.1:"):
        raise WrkError(f"benchmarks load 127.0.0.1 only, not {url}")
    duration = max(1, round(seconds))
    with tempfile.NamedTemporaryFile("wb", suffix=".json", prefix="wrk-body-") as handle:
        handle.write(body)
        handle.flush()
        argv = [
            wrk_binary(),
            f"-t{min(threads, connections)}",
            f"-c{connections}",
            f"-d{duration}s",
            "--timeout",
            "10s",
            "-s",
            str(POST_SCRIPT),
            url,
            "--",
            handle.name,
        ]
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60, check=False)
        except subprocess.TimeoutExpired as exc:
            raise WrkError(f"wrk did not finish within {duration + 60}s: {' '.join(argv)}") from exc
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith(MARKER)), None)
    if out.returncode != 0 or line is None:
        raise WrkError(f"wrk failed ({out.returncode}): {out.stderr.strip() or out.stdout.strip()}")
    data = json.loads(line[len(MARKER) :])
    refused = int(data["errors"]["status"]) if allow_refusals else 0
    errors = sum(data["errors"].values()) - refused
    if errors:
        raise WrkError(f"{url}: {errors} errors under load ({data['errors']}); wrk said:\n{out.stdout}")
    answered = int(data["requests"]) - refused
    if answered <= 0:
        raise WrkError(f"{url}: no request answered with 2xx in {duration}s ({data['errors']})")
    elapsed = data["duration_us"] / 1e6
    latency = data["latency_us"]
    return LoadResult(
        connections=connections,
        seconds=round(elapsed, 2),
        requests=answered,
        rows_per_request=rows,
        requests_per_s=round(answered / elapsed, 1),
        rows_per_s=round(answered * rows / elapsed, 1),
        p50_ms=round(latency["p50"] / 1000, 2),
        p90_ms=round(latency["p90"] / 1000, 2),
        p99_ms=round(latency["p99"] / 1000, 2),
        max_ms=round(latency["max"] / 1000, 2),
        errors=errors,
        refused=refused,
    )
