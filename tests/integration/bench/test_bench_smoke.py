"""`make bench` smoke test: the harness runs end to end in quick mode with one-second load points.

Benchmarks are not run by `make test`; this only proves their code works (real MLflow, real
predictor, real `mlflow models serve`, real MLServer, real PostgreSQL, real wrk). It asserts
structure and correctness, never timings.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from benchmarks.predictor_bench import CEILING, FALLBACK, MLFLOW, MLSERVER, MLSERVER_WORKER_CHOICES, OURS
from benchmarks.run import main
from benchmarks.wrk import WrkError, post_load
from mlstack.config import REPO_ROOT
from tests.support.binaries import require_binary
from tests.support.postgres import require_postgres

pytestmark = pytest.mark.integration


class _Answer(BaseHTTPRequestHandler):
    """POST answers with the status in the server's `status` attribute and echoes the body length."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        size = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(size)
        status: int = self.server.status  # type: ignore[attr-defined]
        payload = json.dumps({"received": len(body)}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def tiny_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    server.status = 200  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_wrk_post_load_reports_throughput_and_percentiles(tiny_server: ThreadingHTTPServer) -> None:
    require_binary("wrk")
    url = f"http://127.0.0.1:{tiny_server.server_address[1]}/predict"
    result = post_load(url, b'{"instances": [{"a": 1}]}', rows=1, connections=2, seconds=1)
    assert result.requests > 0 and result.errors == 0
    assert result.requests_per_s > 0 and result.rows_per_s == result.requests_per_s
    assert 0 < result.p50_ms <= result.p90_ms <= result.p99_ms <= result.max_ms


def test_wrk_non_2xx_answers_are_an_error_not_a_data_point(tiny_server: ThreadingHTTPServer) -> None:
    require_binary("wrk")
    tiny_server.status = 500  # type: ignore[attr-defined]
    url = f"http://127.0.0.1:{tiny_server.server_address[1]}/predict"
    with pytest.raises(WrkError, match="errors under load"):
        post_load(url, b"{}", rows=1, connections=1, seconds=1)


def test_wrk_counts_non_2xx_when_allowed_but_needs_some_2xx(tiny_server: ThreadingHTTPServer) -> None:
    """503 backpressure is counted as `non_2xx` when allowed; a point with no 2xx answer is still an error."""
    require_binary("wrk")
    tiny_server.status = 503  # type: ignore[attr-defined]
    url = f"http://127.0.0.1:{tiny_server.server_address[1]}/predict"
    with pytest.raises(WrkError, match="no request answered with 2xx"):
        post_load(url, b"{}", rows=1, connections=1, seconds=1, allow_non_2xx=True)


def test_wrk_refuses_anything_but_loopback() -> None:
    with pytest.raises(WrkError, match=r"127\.0\.0\.1 only"):
        post_load("http://example.invalid/predict", b"{}", rows=1, connections=1, seconds=1)


def test_unknown_benchmark_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--quick", "--only", "predictor,nonsense"])
    assert exit_info.value.code == 2
    assert "nonsense" in capsys.readouterr().err


@pytest.mark.timeout(1500)
def test_make_bench_quick_runs_servers_crash_and_drift(tmp_path: Path) -> None:
    """`python -m benchmarks.run --quick` with 1 s points: every server measured and answering as the
    champion's sklearn model does, both stores killed and counted, results JSON and verdict lines written.

    Builds MLServer's cached venv from PyPI on first use (a few minutes).
    """
    require_binary("wrk")
    require_postgres()
    out = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--only", "predictor,crash,drift",
         "--seconds", "1", "--out", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=1440, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    report = json.loads(out.read_text())
    machine = report["machine"]
    assert machine["cores"] >= 1 and len(machine["load_average"]) == 3
    assert {"mlflow", "scikit-learn", "onnxruntime"} <= set(machine["packages"])
    predictor = report["benchmarks"]["predictor"]
    servers = predictor["servers"]
    assert set(servers) == {OURS, FALLBACK, MLFLOW, MLSERVER, CEILING}, servers
    assert servers[OURS]["runtime"] == "onnx"
    assert servers[FALLBACK]["runtime"] == "sklearn"
    for label, server in servers.items():
        assert "error" not in server, (label, server.get("error"))
        if label != CEILING:
            assert server["agrees_with_sklearn"] is True, label
            assert set(server["points"]) == {"single c1", "single c8", "batch100 c1", "batch100 c8"}
        assert all(p["requests"] > 0 and p["errors"] == 0 for p in server["points"].values())
    assert servers[MLSERVER]["mlserver_version"]
    assert servers[OURS]["rows_logged"] > 0
    searched = predictor["worker_search_single_c8"]
    assert set(searched[MLSERVER]) == {str(w) for w in MLSERVER_WORKER_CHOICES}
    assert predictor["in_process"]["onnx_rows_per_s"] > 0
    crash = report["benchmarks"]["crash"]["stores"]
    assert set(crash) == {"sqlite", "postgresql"}
    for store, kills in crash.items():
        assert set(kills) == {"single", "batch100"}, (store, kills)
        for kill in kills.values():
            # Counted, not judged: durability is asserted by the predictor's own kill test.
            assert kill["acknowledged"] > 0 and 0 <= kill["missing"] <= kill["acknowledged"]
    assert [w["rows"] for w in report["benchmarks"]["drift"]["windows"]] == [1_000, 10_000]
    lines = [line for line in done.stdout.splitlines() if line.startswith(("PASS ", "FAIL ", "SKIP "))]
    assert len(lines) == len(report["targets"]) >= 11  # predictor 8, crash 2, drift 1
