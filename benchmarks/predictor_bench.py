"""Our predictor vs `mlflow models serve` and MLServer on the same champion, same machine, same run.

Load comes from wrk in a separate process. Each competitor runs at its best worker count (probed);
a bare FastAPI app on our server stack gives the framework's ceiling; in-process ONNX Runtime
gives the model's.
"""

from __future__ import annotations

import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlstack_api.model import onnx_predict_proba, sklearn_predict_proba

from benchmarks import mlserver
from benchmarks.common import Target
from benchmarks.serving import (
    BATCH_ROWS,
    SKLEARN_ALIAS,
    BenchRegistry,
    Bodies,
    Server,
    ceiling_app,
    logged_predictions,
    mlflow_serve,
    mlstack_api,
)
from benchmarks.wrk import LoadResult

WORKER_CHOICES = (1, 2)  # uvicorn workers: ours, mlflow serve, the bare app (2 cores here)
MLSERVER_WORKER_CHOICES = (0, 1, 2)  # MLServer's parallel_workers (0: inference in the HTTP process)
CONNECTIONS = (1, 8)
TARGET_CONNECTIONS = 8
OURS = "mlstack api (onnx)"
FALLBACK = "mlstack api (sklearn fallback)"
MLFLOW = "mlflow models serve"
MLSERVER = mlserver.LABEL
CEILING = "bare FastAPI app (ceiling)"
SINGLE_VS_MLFLOW_TARGET = 50.0
SINGLE_VS_MLSERVER_TARGET = 30.0
BATCH_VS_MLFLOW_TARGET = 20.0
P99_TARGET_MS = 10.0
ORT_SHARE_TARGET = 0.15
TWO_WORKERS_GOAL = 1.5
CEILING_SHARE_TARGET = 0.5


@dataclass(frozen=True)
class Durations:
    """Seconds of load per measured point, per worker-count probe and per warm-up."""

    point: float
    probe: float
    warmup: float
    profile: float

    @classmethod
    def for_mode(cls, quick: bool, seconds: float | None) -> Durations:
        point = seconds if seconds is not None else (2.0 if quick else 10.0)
        return cls(
            point=point,
            probe=max(1.0, min(point, 3.0)),
            warmup=1.0 if quick else 2.0,
            profile=min(point, 5.0),
        )


def in_process_rows_per_s(
    predict: Callable[[np.ndarray], np.ndarray], matrix: np.ndarray, seconds: float, slices: int = 3
) -> float:
    """Rows per second of `predict` on batches of `matrix`, called back to back in this process.

    The best of `slices` equal slices: a burst of outside load should not understate the runtime.
    """
    predict(matrix)  # warm
    best = 0.0
    for _ in range(slices):
        deadline = time.perf_counter() + seconds / slices
        calls = 0
        started = time.perf_counter()
        while time.perf_counter() < deadline:
            predict(matrix)
            calls += 1
        best = max(best, calls * len(matrix) / (time.perf_counter() - started))
    return best


def in_process_baselines(registry: BenchRegistry, bodies: Bodies, seconds: float) -> dict[str, float]:
    """In-process ONNX Runtime and sklearn rows/s (batch 100), configured exactly as the predictor does."""
    matrix = bodies.matrix()
    run_id = registry.champion["run_id"]
    with tempfile.TemporaryDirectory(prefix="bench-ort-") as tmp:
        mlflow.set_tracking_uri(registry.tracking_uri)
        path = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path="onnx/model.onnx", dst_path=tmp
        )
        onnx = onnx_predict_proba(path)
        model = mlflow.sklearn.load_model(registry.champion_uri)
        sklearn = sklearn_predict_proba(model, bodies.features)
        return {
            "onnx_rows_per_s": round(in_process_rows_per_s(onnx, matrix, seconds), 1),
            "sklearn_rows_per_s": round(in_process_rows_per_s(sklearn, matrix, seconds), 1),
            "batch_rows": float(BATCH_ROWS),
        }


def measure_points(
    server: Server, single: bytes, batch: bytes | None, durations: Durations
) -> dict[str, LoadResult]:
    """Warm up, then single-row and (unless `batch` is None) batch-100 requests at 1 and 8 connections."""
    server.load(single, 1, TARGET_CONNECTIONS, durations.warmup)
    points: dict[str, LoadResult] = {}
    kinds = [("single", single, 1)] + ([(f"batch{BATCH_ROWS}", batch, BATCH_ROWS)] if batch else [])
    for kind, body, rows in kinds:
        for connections in CONNECTIONS:
            points[f"{kind} c{connections}"] = server.load(body, rows, connections, durations.point)
    return points


Start = Callable[[int], AbstractContextManager[Server]]


@dataclass
class Competitor:
    """A server under test: how to start it at N workers, its request bodies and its answer check."""

    label: str
    start: Start
    worker_choices: Sequence[int]
    single: bytes
    batch: bytes
    check: Callable[[Server], dict[str, Any]]
    profile_name: str | None = None
    refusal: Callable[[int], str | None] = lambda _workers: None


def search_workers(
    competitor: Competitor, durations: Durations, seconds: float
) -> tuple[int, dict[str, Any]]:
    """Single-row req/s at 8 connections (after a warm-up) for each worker count; the fastest wins.

    A count the server refuses, or that fails to start, is recorded with the reason and skipped.
    """
    tried: dict[str, Any] = {}
    measured: dict[int, float] = {}
    for workers in competitor.worker_choices:
        refused = competitor.refusal(workers)
        if refused:
            tried[str(workers)] = {"refused": refused}
            continue
        if len(competitor.worker_choices) == 1:
            tried[str(workers)] = {"only choice": True}
            return workers, tried
        try:
            with competitor.start(workers) as server:
                server.load(competitor.single, 1, TARGET_CONNECTIONS, durations.warmup)
                point = server.load(competitor.single, 1, TARGET_CONNECTIONS, seconds)
        except Exception as exc:  # e.g. it does not start with that many workers: try the others
            tried[str(workers)] = {"failed": f"{type(exc).__name__}: {str(exc)[-800:]}"}
            print(f"   {competitor.label}, {workers} workers: {tried[str(workers)]['failed']}", flush=True)
            continue
        tried[str(workers)] = point.as_dict()
        measured[workers] = point.requests_per_s
    if not measured:
        raise RuntimeError(f"{competitor.label} ran at none of the worker counts tried: {tried}")
    best = max(measured, key=lambda w: measured[w])
    summary = ", ".join(f"{w}: {rps:.0f} req/s" for w, rps in measured.items())
    print(f"   {competitor.label}: workers single c8 {summary} -> {best}", flush=True)
    return best, tried


def predictor_refuses(registry: BenchRegistry, workdir: Path) -> Callable[[int], str | None]:
    """Ask the predictor's own app factory whether it accepts `api.workers=N` (it may refuse N > 1)."""
    from mlstack_api.main import create_app

    def refusal(workers: int) -> str | None:
        try:
            create_app(registry.config(workdir / "probe-state", **{"api.workers": workers}), admin_token=None)
        except ValueError as exc:
            return str(exc)
        return None

    return refusal


def serve_and_measure(
    competitor: Competitor, workers: int, durations: Durations, profile_dir: Path | None = None
) -> dict[str, Any]:
    """Start the server, check its answers, measure every point; optionally py-spy the c8 points."""
    profiles: dict[str, Any] = {}
    with competitor.start(workers) as server:
        checked = competitor.check(server)
        points = measure_points(server, competitor.single, competitor.batch, durations)
        if profile_dir is not None and competitor.profile_name:
            for kind, body, rows in (
                ("single", competitor.single, 1),
                (f"batch{BATCH_ROWS}", competitor.batch, BATCH_ROWS),
            ):
                out = profile_dir / f"{competitor.profile_name}-{kind}-c{TARGET_CONNECTIONS}.txt"
                profiles[f"{kind} c{TARGET_CONNECTIONS}"] = server.profile(
                    body, rows, TARGET_CONNECTIONS, durations.profile, out
                )
    logged = (
        {"rows_answered": server.rows_completed, "rows_logged": logged_predictions(server)}
        if "store_url" in server.extra
        else {}
    )
    return {
        "server": competitor.label,
        "workers": workers,
        "runtime": server.runtime,
        **checked,
        **logged,
        "points": {name: p.as_dict() for name, p in points.items()},
        **({"profiles": profiles} if profiles else {}),
    }


def ratio(numerator: float, denominator: float) -> float:
    return round(numerator / denominator, 3) if denominator else float("inf")


def run(
    registry: BenchRegistry,
    workdir: Path,
    quick: bool,
    seconds: float | None = None,
    profile_dir: Path | None = None,
) -> dict[str, Any]:
    """Measure every server (ours, our sklearn fallback, mlflow serve, MLServer, the bare app).

    A competitor that cannot run (MLServer without PyPI) is recorded as an error; the others still run.
    With `profile_dir`, ours, mlflow serve and MLServer are sampled with py-spy at 8 connections.
    """
    durations = Durations.for_mode(quick, seconds)
    bodies = Bodies.from_wine()
    reference = [int(x) for x in _predict_labels(registry, bodies)]

    def ours(alias: str, tag: str) -> Start:
        return lambda workers: mlstack_api(registry, workdir / f"api-{tag}-{workers}", workers, alias=alias)

    def agrees(labels: list[Any]) -> bool:
        return [int(x) for x in labels] == reference

    def check_ours(server: Server) -> dict[str, Any]:
        answer = server.post(bodies.mlstack(BATCH_ROWS))
        labels = [p["label"] for p in answer["predictions"]]
        return {"model_version": answer["model"]["version"], "agrees_with_sklearn": agrees(labels)}

    def check_mlflow(server: Server) -> dict[str, Any]:
        labels = server.post(bodies.mlflow(BATCH_ROWS))["predictions"]
        return {"model_version": registry.champion["version"], "agrees_with_sklearn": agrees(labels)}

    def check_mlserver(server: Server) -> dict[str, Any]:
        answer = server.post(bodies.v2(BATCH_ROWS))
        (output,) = answer["outputs"]
        return {
            "model_version": answer.get("model_version"),
            "mlserver_version": server.extra.get("mlserver_version"),
            "agrees_with_sklearn": agrees(output["data"]),
        }

    refusal = predictor_refuses(registry, workdir)
    competitors = {
        OURS: Competitor(
            OURS,
            ours(registry.champion_alias, "onnx"),
            WORKER_CHOICES,
            bodies.mlstack(1),
            bodies.mlstack(BATCH_ROWS),
            check_ours,
            "mlstack-api-onnx",
            refusal,
        ),
        FALLBACK: Competitor(
            FALLBACK,
            ours(SKLEARN_ALIAS, "sklearn"),
            WORKER_CHOICES,
            bodies.mlstack(1),
            bodies.mlstack(BATCH_ROWS),
            check_ours,
            None,
            refusal,
        ),
        MLFLOW: Competitor(
            MLFLOW,
            lambda w: mlflow_serve(registry, workdir, w),
            WORKER_CHOICES,
            bodies.mlflow(1),
            bodies.mlflow(BATCH_ROWS),
            check_mlflow,
            "mlflow-serve",
        ),
        MLSERVER: Competitor(
            MLSERVER,
            lambda w: mlserver.mlserver(registry, workdir, w),
            MLSERVER_WORKER_CHOICES,
            bodies.v2(1),
            bodies.v2(BATCH_ROWS),
            check_mlserver,
            "mlserver",
        ),
    }

    baselines = in_process_baselines(registry, bodies, min(durations.point, 3.0))
    searches: dict[str, dict[str, Any]] = {}
    chosen: dict[str, int] = {}
    servers: dict[str, dict[str, Any]] = {}
    for label in (OURS, MLFLOW, MLSERVER):
        # Ours is searched with full-length points: its 1-vs-2 workers ratio is a reported result.
        probe_s = durations.point if label == OURS else durations.probe
        try:
            chosen[label], searches[label] = search_workers(competitors[label], durations, probe_s)
        except Exception as exc:
            traceback.print_exc()
            servers[label] = {"server": label, "error": f"{type(exc).__name__}: {str(exc)[-1500:]}"}
    chosen[FALLBACK] = chosen.get(OURS, 1)
    for label in (OURS, FALLBACK, MLFLOW, MLSERVER):
        if label in servers:  # its worker search already failed
            continue
        try:
            servers[label] = serve_and_measure(competitors[label], chosen[label], durations, profile_dir)
        except Exception as exc:
            traceback.print_exc()
            servers[label] = {"server": label, "error": f"{type(exc).__name__}: {str(exc)[-1500:]}"}
    ceiling_workers = chosen.get(OURS, 1)
    try:
        with ceiling_app(workdir, ceiling_workers) as bare:
            points = measure_points(bare, bodies.mlstack(1), None, durations)
        servers[CEILING] = {
            "server": CEILING,
            "workers": ceiling_workers,
            "runtime": bare.runtime,
            "points": {name: p.as_dict() for name, p in points.items()},
        }
    except Exception as exc:
        traceback.print_exc()
        servers[CEILING] = {"server": CEILING, "error": f"{type(exc).__name__}: {exc}"}
    result: dict[str, Any] = {
        "benchmark": "predictor",
        "quick": quick,
        "seconds_per_point": durations.point,
        "model": registry.champion,
        "in_process": baselines,
        "worker_search_single_c8": searches,
        "chosen_workers": chosen,
        "servers": servers,
    }
    result["ratios"] = ratios(servers, baselines, searches.get(OURS, {}))
    result["targets"] = [t.as_dict() for t in targets(servers, result["ratios"], searches.get(OURS, {}))]
    return result


def _predict_labels(registry: BenchRegistry, bodies: Bodies) -> Iterator[int]:
    """The champion's own sklearn predictions for the batch (every server must agree with these)."""
    mlflow.set_tracking_uri(registry.tracking_uri)
    model = mlflow.sklearn.load_model(registry.champion_uri)
    import pandas as pd

    yield from model.predict(pd.DataFrame(bodies.rows, columns=bodies.features)).tolist()


SINGLE = f"single c{TARGET_CONNECTIONS}"
BATCH = f"batch{BATCH_ROWS} c{TARGET_CONNECTIONS}"


def _point(servers: dict[str, Any], server: str, point: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = servers.get(server, {}).get("points", {}).get(point)
    return found


def _rate(point: dict[str, Any] | None, key: str = "rows_per_s") -> float | None:
    return None if point is None else float(point[key])


def ratios(
    servers: dict[str, Any], baselines: dict[str, float], ours_search: dict[str, Any]
) -> dict[str, float | None]:
    """Ours / each competitor per point; batch rows/s / in-process ORT; ours / the bare app; 2 / 1 workers."""
    out: dict[str, float | None] = {}

    def put(name: str, numerator: float | None, denominator: float | None) -> None:
        out[name] = None if numerator is None or denominator is None else ratio(numerator, denominator)

    for theirs, short in ((MLFLOW, "mlflow"), (MLSERVER, "mlserver")):
        for point in ("single c1", SINGLE, f"batch{BATCH_ROWS} c1", BATCH):
            put(
                f"onnx / {short} {point} rows/s",
                _rate(_point(servers, OURS, point)),
                _rate(_point(servers, theirs, point)),
            )
    put(
        f"onnx {BATCH} rows/s / in-process ORT rows/s",
        _rate(_point(servers, OURS, BATCH)),
        baselines["onnx_rows_per_s"],
    )
    put(
        f"onnx / bare app {SINGLE} req/s",
        _rate(_point(servers, OURS, SINGLE)),
        _rate(_point(servers, CEILING, SINGLE)),
    )
    one, two = ours_search.get("1", {}), ours_search.get("2", {})
    put(f"onnx 2 workers / 1 worker {SINGLE} req/s", two.get("requests_per_s"), one.get("requests_per_s"))
    return out


def targets(
    servers: dict[str, Any], found: dict[str, float | None], ours_search: dict[str, Any]
) -> list[Target]:
    """Issue 14's serving targets, each PASS/FAIL (or SKIP with the reason) from this run's numbers."""
    ours_error = servers.get(OURS, {}).get("error")

    def missing(*labels: str) -> str:
        broken = [
            f"{label}: {servers.get(label, {}).get('error', 'not measured')}"
            for label in labels
            if "points" not in servers.get(label, {})
        ]
        return "not measured (" + "; ".join(broken)[:300] + ")"

    def times(name: str, key: str, goal: float, *labels: str) -> Target:
        value = found.get(key)
        if value is None:
            return Target(name, f">= {goal:.0f}x", missing(*labels), False)
        return Target(name, f">= {goal:.0f}x", f"{value:.1f}x", value >= goal)

    out = [
        times(
            "single row c8 vs mlflow serve (req/s)",
            f"onnx / mlflow {SINGLE} rows/s",
            SINGLE_VS_MLFLOW_TARGET,
            OURS,
            MLFLOW,
        ),
        times(
            "single row c8 vs MLServer (req/s)",
            f"onnx / mlserver {SINGLE} rows/s",
            SINGLE_VS_MLSERVER_TARGET,
            OURS,
            MLSERVER,
        ),
    ]
    single, batch = _point(servers, OURS, SINGLE), _point(servers, OURS, BATCH)
    if single is None:
        out.append(
            Target("single row c8 p99, 0 non-2xx", f"<= {P99_TARGET_MS:.0f} ms, 0", missing(OURS), False)
        )
    else:
        out.append(
            Target(
                "single row c8 p99 and non-2xx",
                f"<= {P99_TARGET_MS:.0f} ms, 0 non-2xx",
                f"{single['p99_ms']:.1f} ms, {single['non_2xx']} non-2xx",
                single["p99_ms"] <= P99_TARGET_MS and single["non_2xx"] == 0,
            )
        )
    out.append(
        times(
            "batch-100 c8 rows/s vs mlflow serve",
            f"onnx / mlflow {BATCH} rows/s",
            BATCH_VS_MLFLOW_TARGET,
            OURS,
            MLFLOW,
        )
    )
    share = found.get(f"onnx {BATCH} rows/s / in-process ORT rows/s")
    out.append(
        Target(
            "batch-100 c8 rows/s vs in-process ONNX Runtime",
            f">= {ORT_SHARE_TARGET:.0%}",
            missing(OURS) if share is None else f"{share:.1%}",
            share is not None and share >= ORT_SHARE_TARGET,
        )
    )
    if batch is None:
        out.append(Target("batch-100 c8: 0 non-2xx, every row logged", "0, all", missing(OURS), False))
    else:
        ours = servers[OURS]
        logged, answered = ours.get("rows_logged", 0), ours.get("rows_answered", 0)
        out.append(
            Target(
                "batch-100 c8: 0 refusals/non-2xx, every answered row logged",
                "0 non-2xx, logged >= answered",
                f"{batch['non_2xx']} non-2xx; {logged:,} logged / {answered:,} answered (whole run)",
                batch["non_2xx"] == 0 and logged >= answered,
            )
        )
    two_vs_one = found.get(f"onnx 2 workers / 1 worker {SINGLE} req/s")
    if two_vs_one is None:
        why = (ours_search.get("2") or {}).get("refused") or (ours_search.get("2") or {}).get("failed")
        out.append(
            Target(
                "2 workers vs 1, single row c8 (req/s)",
                f">= {TWO_WORKERS_GOAL}x (goal)",
                f"skipped: {why or ours_error or 'not measured'}"[:300],
                False,
                skipped=True,
            )
        )
    else:
        out.append(
            Target(
                "2 workers vs 1, single row c8 (req/s)",
                f">= {TWO_WORKERS_GOAL}x (goal)",
                f"{two_vs_one:.2f}x",
                two_vs_one >= TWO_WORKERS_GOAL,
            )
        )
    ceiling = found.get(f"onnx / bare app {SINGLE} req/s")
    out.append(
        Target(
            "single row c8 vs the framework's ceiling (bare FastAPI app, same workers)",
            f">= {CEILING_SHARE_TARGET:.0%}",
            missing(OURS, CEILING) if ceiling is None else f"{ceiling:.1%}",
            ceiling is not None and ceiling >= CEILING_SHARE_TARGET,
        )
    )
    return out


def _non_2xx(point: dict[str, Any]) -> int:
    return int(point.get("non_2xx", point.get("refused", 0)))


def table(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Rows for run.py's printed table: every measured point, the worker probes, in-process baselines."""
    columns = [
        "server",
        "workers",
        "runtime",
        "point",
        "req/s",
        "rows/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "non-2xx",
    ]

    def row(label: str, workers: Any, runtime: str, name: str, p: dict[str, Any]) -> list[str]:
        return [
            label,
            str(workers),
            runtime,
            name,
            f"{p['requests_per_s']:.0f}",
            f"{p['rows_per_s']:.0f}",
            f"{p['p50_ms']:.2f}",
            f"{p['p90_ms']:.2f}",
            f"{p['p99_ms']:.2f}",
            str(_non_2xx(p)),
        ]

    rows = []
    for label, server in result["servers"].items():
        if "error" in server:
            rows.append([label, "-", "-", "BROKEN", *["-"] * 6])  # the error: results JSON, log
            continue
        for name, p in server["points"].items():
            rows.append(row(label, server["workers"], server["runtime"], name, p))
    for label, tried in result.get("worker_search_single_c8", {}).items():
        for workers, p in tried.items():
            if "requests_per_s" in p:
                rows.append(row(label, workers, "(worker probe)", f"single c{TARGET_CONNECTIONS}", p))
            else:
                rows.append(
                    [
                        label,
                        workers,
                        "(worker probe)",
                        ", ".join(p),  # refused / failed: the reason is in the JSON and the SKIP line
                        *["-"] * 6,
                    ]
                )
    base = result["in_process"]
    rows.append(
        ["in-process ORT", "-", "onnx", "batch100", "-", f"{base['onnx_rows_per_s']:.0f}", "-", "-", "-", "-"]
    )
    rows.append(
        [
            "in-process sklearn",
            "-",
            "sklearn",
            "batch100",
            "-",
            f"{base['sklearn_rows_per_s']:.0f}",
            "-",
            "-",
            "-",
            "-",
        ]
    )
    return columns, rows
