"""`make bench` harness logic without servers: target verdicts, acknowledgement parsing, pins, the bare app.

No timing is asserted anywhere: the numbers fed in are made up; only the bookkeeping is checked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from benchmarks import crash_bench, mlserver, predictor_bench, profiling, report
from benchmarks.ceiling_app import app as bare_app
from benchmarks.common import verdict
from benchmarks.serving import PREDICTOR_APP
from benchmarks.wrk import read_acks
from mlstack.config import REPO_ROOT
from mlstack.runtime.local import api_command


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        name, sep, version = line.strip().partition("==")
        if sep and not name.startswith("#"):
            pins[name.lower().replace("_", "-")] = version
    return pins


def test_mlserver_venv_loads_the_champion_with_our_scikit_learn() -> None:
    """The champion crosses over as a joblib pickle: MLServer's venv must pin the same model stack."""
    ours, theirs = _pins(REPO_ROOT / "requirements.lock"), _pins(mlserver.LOCK)
    assert theirs["mlserver"] and theirs["mlserver-sklearn"] == theirs["mlserver"]
    for package in ("scikit-learn", "numpy", "scipy", "joblib"):
        assert theirs[package] == ours[package], package


def test_mlserver_venv_cache_key_follows_the_lock() -> None:
    assert len(mlserver.lock_key()) == 64
    assert mlserver.VENV.is_relative_to(REPO_ROOT / ".mlops")


def test_read_acks_collects_ids_of_2xx_answers_and_counts_other_statuses(tmp_path: Path) -> None:
    out = tmp_path / "acks.txt"
    out.write_text("+ a1 a2\n+ b1\n! 503\n! 503\n! 500\n+ a2\n")
    acks = read_acks(out)
    assert acks.ids == {"a1", "a2", "b1"}
    assert acks.answers_2xx == 3
    assert acks.non_2xx == {503: 2, 500: 1}
    assert read_acks(tmp_path / "absent.txt").answers_2xx == 0


def _point(rps: float, rows: int = 1, p99: float = 2.0, non_2xx: int = 0) -> dict[str, Any]:
    return {"requests_per_s": rps, "rows_per_s": rps * rows, "p50_ms": 1.0, "p90_ms": 1.5, "p99_ms": p99,
            "non_2xx": non_2xx}  # fmt: skip


def _server(single: float, batch: float, **extra: Any) -> dict[str, Any]:
    points = {"single c1": _point(single / 2), "single c8": _point(single),
              "batch100 c1": _point(batch / 2, 100), "batch100 c8": _point(batch, 100)}  # fmt: skip
    return {"workers": 1, "runtime": "x", "points": points, **extra}


def _targets(servers: dict[str, Any], search: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = predictor_bench.ratios(servers, {"onnx_rows_per_s": 100_000.0}, search)
    return {t.name: t.as_dict() for t in predictor_bench.targets(servers, found, search)}


def test_predictor_targets_from_one_runs_numbers() -> None:
    servers = {
        predictor_bench.OURS: _server(4000, 300, rows_logged=50_000, rows_answered=50_000),
        predictor_bench.MLFLOW: _server(50, 100),
        predictor_bench.MLSERVER: _server(200, 100),
        predictor_bench.CEILING: _server(10_000, 0),
    }
    search = {"1": _point(4000), "2": _point(6400)}
    targets = _targets(servers, search)
    assert targets["single row c8 vs mlflow serve (req/s)"]["measured"] == "80.0x"
    assert targets["single row c8 vs mlflow serve (req/s)"]["passed"]
    assert targets["single row c8 vs MLServer (req/s)"]["measured"] == "20.0x"
    assert not targets["single row c8 vs MLServer (req/s)"]["passed"]
    assert targets["batch-100 c8 rows/s vs mlflow serve"]["measured"] == "3.0x"
    assert targets["batch-100 c8 rows/s vs in-process ONNX Runtime"]["measured"] == "30.0%"
    assert targets["2 workers vs 1, single row c8 (req/s)"]["measured"] == "1.60x"
    assert (
        targets["single row c8 vs the framework's ceiling (bare FastAPI app, same workers)"]["measured"]
        == "40.0%"
    )
    assert targets["batch-100 c8: 0 refusals/non-2xx, every answered row logged"]["passed"]


def test_refusals_unlogged_rows_and_a_slow_tail_fail_their_targets() -> None:
    ours = _server(4000, 300, rows_logged=10, rows_answered=50_000)
    ours["points"]["single c8"]["p99_ms"] = 12.0
    ours["points"]["batch100 c8"]["non_2xx"] = 7
    targets = _targets({predictor_bench.OURS: ours}, {})
    assert not targets["single row c8 p99 and non-2xx"]["passed"]
    batch = targets["batch-100 c8: 0 refusals/non-2xx, every answered row logged"]
    assert not batch["passed"] and batch["measured"].startswith("7 non-2xx")


def test_a_competitor_that_could_not_run_fails_its_target_with_the_reason() -> None:
    servers = {predictor_bench.OURS: _server(4000, 300), predictor_bench.MLSERVER: {"error": "no PyPI here"}}
    targets = _targets(servers, {"2": {"refused": "api.workers must be 1"}})
    mlserver_target = targets["single row c8 vs MLServer (req/s)"]
    assert not mlserver_target["passed"] and "no PyPI here" in mlserver_target["measured"]
    two = targets["2 workers vs 1, single row c8 (req/s)"]
    assert verdict(two) == "SKIP" and "api.workers must be 1" in two["measured"]


def test_crash_targets_count_every_missing_acknowledgement() -> None:
    kill = {"missing": 0, "acknowledged": 900}
    assert crash_bench.target("sqlite", {"single": kill, "batch100": kill}).passed
    lost = crash_bench.target(
        "postgresql", {"single": kill, "batch100": {"missing": 3, "acknowledged": 5000}}
    )
    assert not lost.passed and lost.measured.startswith("3 ")
    skipped = crash_bench.target("postgresql", {"skipped": "no initdb"}).as_dict()
    assert verdict(skipped) == "SKIP"


def test_report_marks_failures_and_skips() -> None:
    machine = {"git": "g", "cores": 2, "cpu_model": "c", "memory_gib": 1, "kernel": "k",
               "load_average": [0, 0, 0], "python": "3", "packages": {}, "wrk": "w"}  # fmt: skip
    failed = {"benchmark": "b", "name": "n1", "goal": "g", "measured": "m", "passed": False}
    skipped = {**failed, "name": "n2", "skipped": True}
    rendered = report.render(
        {"started_at": "t", "duration_s": 1, "quick": True, "load_average_end": [0, 0, 0],
         "machine": machine, "benchmarks": {}, "targets": [failed, skipped]}
    )  # fmt: skip
    assert "| **FAIL** | b | n1 |" in rendered and "| SKIP | b | n2 |" in rendered


def test_the_bare_app_runs_on_the_predictors_command_line() -> None:
    """The ceiling swaps only the ASGI app in the predictor's own uvicorn command line."""
    assert PREDICTOR_APP in api_command(7654, 2)


def test_the_bare_app_parses_the_body_and_answers_a_constant() -> None:
    client = TestClient(bare_app)
    answer = client.post("/predict", content=b'{"instances": [{"alcohol": 13.2}]}')
    assert answer.status_code == 200 and answer.json() == {"predictions": [{"label": 0}]}
    assert client.post("/predict", content=b"[1]").status_code == 422
    assert client.get("/healthz").status_code == 200


def test_profile_buckets_match_old_and_new_frame_names() -> None:
    """py-spy's collapsed stacks: a bucket counts samples whose stack holds any of its frames."""
    collapsed = "\n".join(
        [
            "process 1:x;predict (mlstack_api/routes.py:1);parse_instances (mlstack_api/validation.py:4) 3",
            "process 1:x;predict (mlstack_api/routes.py:1);prediction_ids (mlstack_api/predictions.py:3) 1",
            "process 1:x;predict (mlstack_api/routes.py:100);token_hex (secrets.py:10) 1",
            "process 1:x;PredictionLogWriter._run (mlstack/prediction_log.py:300) 5",
        ]
    )
    summary = profiling.summarize(collapsed, buckets=profiling.PREDICTOR_BUCKETS)
    buckets = dict(summary["buckets"])
    assert summary["samples"] == 10
    assert buckets["request handler (predict)"] == 0.5
    assert buckets["  prediction ids"] == 0.2
    assert buckets["prediction log: commits (writer thread, or the event loop for SQLite)"] == 0.5
    assert summary["self"][0] == ["PredictionLogWriter._run (prediction_log.py)", 0.5]
