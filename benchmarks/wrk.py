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
RECORD_SCRIPT = Path(__file__).with_name("lua") / "record_ids.lua"
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
    non_2xx: int = 0  # answers >= 400 (e.g. 503 backpressure); excluded from requests/rows per second

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_loopback(url: str) -> None:
    """Benchmark traffic goes to this machine's loopback only."""
    if not url.startswith("http://127.0.0.1:"):
        raise WrkError(f"benchmarks load 127.0.0.1 only, not {url}")


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
    allow_non_2xx: bool = False,
) -> LoadResult:
    """POST `body` to `url` for `seconds` with `connections` keep-alive connections.

    One wrk thread by default: on a small machine a second load thread only takes CPU from the
    server under test. Socket errors fail the point; non-2xx answers fail it too unless
    `allow_non_2xx`, in which case they are counted as `non_2xx` and only 2xx answers count as
    throughput (latency percentiles still include them: wrk does not split them).
    """
    check_loopback(url)
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
    non_2xx = int(data["errors"]["status"]) if allow_non_2xx else 0
    errors = sum(data["errors"].values()) - non_2xx
    if errors:
        raise WrkError(f"{url}: {errors} errors under load ({data['errors']}); wrk said:\n{out.stdout}")
    answered = int(data["requests"]) - non_2xx
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
        non_2xx=non_2xx,
    )


@dataclass(frozen=True)
class Acks:
    """What a recording load saw: every prediction id acknowledged by a 2xx answer, non-2xx statuses."""

    ids: set[str]
    answers_2xx: int
    non_2xx: dict[int, int]


def start_recording_load(
    url: str, body: bytes, connections: int, seconds: float, out: Path
) -> subprocess.Popen[str]:
    """Start wrk POSTing `body` in the background; each 2xx answer's prediction ids go to `out`.

    The caller stops it (SIGINT) or waits for it (`seconds` bounds it either way); `read_acks(out)`.
    Socket errors are expected (the server may be killed under it) and not an error here.
    """
    check_loopback(url)
    body_file = out.with_suffix(".body.json")
    body_file.write_bytes(body)
    argv = [
        wrk_binary(), "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
        "-s", str(RECORD_SCRIPT), url, "--", str(body_file), str(out),
    ]  # fmt: skip
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def read_acks(out: Path) -> Acks:
    """Parse the file `record_ids.lua` wrote: `+ id id ...` per 2xx answer, `! status` per non-2xx."""
    ids: set[str] = set()
    answers = 0
    non_2xx: dict[int, int] = {}
    for line in out.read_text().splitlines() if out.exists() else []:
        kind, _, rest = line.partition(" ")
        if kind == "+":
            answers += 1
            ids.update(rest.split())
        elif kind == "!" and rest.strip().isdigit():
            status = int(rest)
            non_2xx[status] = non_2xx.get(status, 0) + 1
    return Acks(ids, answers, non_2xx)
