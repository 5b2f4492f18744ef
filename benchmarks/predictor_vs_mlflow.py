"""Our predictor vs `mlflow models serve` on the same champion, same machine, same run (wrk load)."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlstack_api.model import onnx_predict_proba, sklearn_predict_proba

from benchmarks.common import Target
from benchmarks.serving import (
    BATCH_ROWS,
    SKLEARN_ALIAS,
    BenchRegistry,
    Bodies,
    Server,
    mlflow_serve,
    mlstack_api,
)
from benchmarks.wrk import LoadResult

WORKER_CHOICES = (1, 2)
CONNECTIONS = (1, 8)
TARGET_CONNECTIONS = 8
SINGLE_RATIO_TARGET = 50.0
BATCH_RATIO_TARGET = 20.0
P99_TARGET_MS = 15.0
ORT_SHARE_TARGET = 0.15


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
        model = mlflow.sklearn.load_model(f"models:/{registry.model_name}@champion")
        sklearn = sklearn_predict_proba(model, bodies.features)
        return {
            "onnx_rows_per_s": round(in_process_rows_per_s(onnx, matrix, seconds), 1),
            "sklearn_rows_per_s": round(in_process_rows_per_s(sklearn, matrix, seconds), 1),
            "batch_rows": float(BATCH_ROWS),
        }


def measure_points(
    server: Server, single: bytes, batch: bytes, durations: Durations
) -> dict[str, LoadResult]:
    """Warm up, then single-row and batch-100 requests at 1 and 8 connections."""
    server.load(single, 1, TARGET_CONNECTIONS, durations.warmup)
    points: dict[str, LoadResult] = {}
    for kind, body, rows in (("single", single, 1), (f"batch{BATCH_ROWS}", batch, BATCH_ROWS)):
        for connections in CONNECTIONS:
            points[f"{kind} c{connections}"] = server.load(body, rows, connections, durations.point)
    return points


def probe(server: Server, single: bytes, durations: Durations) -> float:
    """Single-row requests/s at 8 connections after a warm-up: how worker counts are compared."""
    server.load(single, 1, TARGET_CONNECTIONS, durations.warmup)
    return server.load(single, 1, TARGET_CONNECTIONS, durations.probe).requests_per_s


def best_workers(
    start: Callable[[int], AbstractContextManager[Server]],
    single: bytes,
    durations: Durations,
    refusal: Callable[[int], str | None] = lambda _workers: None,
) -> tuple[int, dict[str, float | str]]:
    """Try each worker count the server accepts; the one with the higher single-row throughput wins."""
    tried: dict[str, float | str] = {}
    for workers in WORKER_CHOICES:
        refused = refusal(workers)
        if refused:
            tried[str(workers)] = f"refused: {refused}"
    accepted = [w for w in WORKER_CHOICES if str(w) not in tried]
    if not accepted:
        raise RuntimeError(f"the server accepts none of the worker counts {WORKER_CHOICES}: {tried}")
    if len(accepted) == 1:  # nothing to compare: no probe
        tried[str(accepted[0])] = "only accepted count"
        return accepted[0], tried
    for workers in accepted:
        with start(workers) as server:
            tried[str(workers)] = probe(server, single, durations)
    return max(accepted, key=lambda w: float(tried[str(w)])), tried


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
    start: Callable[[int], AbstractContextManager[Server]],
    workers: int,
    single: bytes,
    batch: bytes,
    durations: Durations,
    check: Callable[[Server], dict[str, Any]],
    profile_to: Path | None = None,
) -> dict[str, Any]:
    """Start the server, check its answers, measure every point; optionally py-spy the c8 points."""
    profiles: dict[str, Any] = {}
    with start(workers) as server:
        checked = check(server)
        points = measure_points(server, single, batch, durations)
        if profile_to is not None:
            for kind, body, rows in (("single", single, 1), (f"batch{BATCH_ROWS}", batch, BATCH_ROWS)):
                out = profile_to.with_name(f"{profile_to.name}-{kind}-c{TARGET_CONNECTIONS}.txt")
                profiles[f"{kind} c{TARGET_CONNECTIONS}"] = server.profile(
                    body, rows, TARGET_CONNECTIONS, durations.profile, out
                )
    return {
        "server": server.label,
        "workers": workers,
        "runtime": server.runtime,
        **checked,
        "points": {name: p.as_dict() for name, p in points.items()},
        **({"profiles": profiles} if profiles else {}),
    }


def ratio(numerator: float, denominator: float) -> float:
    return round(numerator / denominator, 2) if denominator else float("inf")


def run(
    registry: BenchRegistry,
    workdir: Path,
    quick: bool,
    seconds: float | None = None,
    profile_dir: Path | None = None,
) -> dict[str, Any]:
    """Measure both servers (and our sklearn fallback) and compare against the targets.

    With `profile_dir`, our ONNX server and mlflow serve are also sampled with py-spy at 8 connections.
    """
    durations = Durations.for_mode(quick, seconds)
    bodies = Bodies.from_wine()
    reference = [int(x) for x in _predict_labels(registry, bodies)]

    def ours(alias: str, tag: str) -> Callable[[int], AbstractContextManager[Server]]:
        return lambda workers: mlstack_api(registry, workdir / f"api-{tag}-{workers}", workers, alias=alias)

    def theirs(workers: int) -> AbstractContextManager[Server]:
        return mlflow_serve(registry, workdir, workers)

    def check_ours(server: Server) -> dict[str, Any]:
        answer = server.post(bodies.mlstack(BATCH_ROWS))
        labels = [p["label"] for p in answer["predictions"]]
        return {"model_version": answer["model"]["version"], "agrees_with_sklearn": labels == reference}

    def check_theirs(server: Server) -> dict[str, Any]:
        labels = [int(x) for x in server.post(bodies.mlflow(BATCH_ROWS))["predictions"]]
        return {"model_version": registry.champion["version"], "agrees_with_sklearn": labels == reference}

    baselines = in_process_baselines(registry, bodies, min(durations.point, 3.0))
    ours_workers, ours_tried = best_workers(
        ours("champion", "onnx"), bodies.mlstack(1), durations, predictor_refuses(registry, workdir)
    )
    theirs_workers, theirs_tried = best_workers(theirs, bodies.mlflow(1), durations)
    servers = {
        "mlstack api (onnx)": serve_and_measure(
            ours("champion", "onnx"),
            ours_workers,
            bodies.mlstack(1),
            bodies.mlstack(BATCH_ROWS),
            durations,
            check_ours,
            profile_dir / "mlstack-api-onnx" if profile_dir else None,
        ),
        "mlstack api (sklearn fallback)": serve_and_measure(
            ours(SKLEARN_ALIAS, "sklearn"),
            ours_workers,
            bodies.mlstack(1),
            bodies.mlstack(BATCH_ROWS),
            durations,
            check_ours,
        ),
        "mlflow models serve": serve_and_measure(
            theirs,
            theirs_workers,
            bodies.mlflow(1),
            bodies.mlflow(BATCH_ROWS),
            durations,
            check_theirs,
            profile_dir / "mlflow-serve" if profile_dir else None,
        ),
    }
    result: dict[str, Any] = {
        "benchmark": "predictor_vs_mlflow",
        "quick": quick,
        "seconds_per_point": durations.point,
        "model": registry.champion,
        "in_process": baselines,
        "worker_search_single_c8_rps": {"mlstack api": ours_tried, "mlflow models serve": theirs_tried},
        "chosen_workers": {"mlstack api": ours_workers, "mlflow models serve": theirs_workers},
        "servers": servers,
    }
    result["ratios"] = ratios(servers, baselines)
    result["targets"] = [t.as_dict() for t in targets(servers, result["ratios"])]
    return result


def _predict_labels(registry: BenchRegistry, bodies: Bodies) -> Iterator[int]:
    """The champion's own sklearn predictions for the batch (both servers must agree with these)."""
    mlflow.set_tracking_uri(registry.tracking_uri)
    model = mlflow.sklearn.load_model(f"models:/{registry.model_name}@champion")
    import pandas as pd

    yield from model.predict(pd.DataFrame(bodies.rows, columns=bodies.features)).tolist()


def _point(servers: dict[str, Any], server: str, point: str) -> dict[str, Any]:
    found: dict[str, Any] = servers[server]["points"][point]
    return found


def ratios(servers: dict[str, Any], baselines: dict[str, float]) -> dict[str, float]:
    """Ours / mlflow serve, per point, for both of our runtimes; batch rows/s as a share of in-process ORT."""
    out: dict[str, float] = {}
    theirs = "mlflow models serve"
    for ours, short in (("mlstack api (onnx)", "onnx"), ("mlstack api (sklearn fallback)", "sklearn")):
        for point in servers[theirs]["points"]:
            out[f"{short} / mlflow {point} throughput"] = ratio(
                _point(servers, ours, point)["rows_per_s"], _point(servers, theirs, point)["rows_per_s"]
            )
    batch = f"batch{BATCH_ROWS} c{TARGET_CONNECTIONS}"
    out[f"onnx {batch} rows/s / in-process ORT rows/s"] = ratio(
        _point(servers, "mlstack api (onnx)", batch)["rows_per_s"], baselines["onnx_rows_per_s"]
    )
    return out


def targets(servers: dict[str, Any], found: dict[str, float]) -> list[Target]:
    single = f"single c{TARGET_CONNECTIONS}"
    batch = f"batch{BATCH_ROWS} c{TARGET_CONNECTIONS}"
    single_ratio = found[f"onnx / mlflow {single} throughput"]
    batch_ratio = found[f"onnx / mlflow {batch} throughput"]
    share = found[f"onnx {batch} rows/s / in-process ORT rows/s"]
    p99 = _point(servers, "mlstack api (onnx)", single)["p99_ms"]
    return [
        Target(
            "predictor single-row throughput vs mlflow serve (8 conns)",
            f">= {SINGLE_RATIO_TARGET:.0f}x",
            f"{single_ratio:.1f}x",
            single_ratio >= SINGLE_RATIO_TARGET,
        ),
        Target(
            "predictor single-row p99 (8 conns)",
            f"<= {P99_TARGET_MS:.0f} ms",
            f"{p99:.1f} ms",
            p99 <= P99_TARGET_MS,
        ),
        Target(
            "predictor batch-100 rows/s vs mlflow serve (8 conns)",
            f">= {BATCH_RATIO_TARGET:.0f}x",
            f"{batch_ratio:.1f}x",
            batch_ratio >= BATCH_RATIO_TARGET,
        ),
        Target(
            "predictor batch-100 rows/s vs in-process ONNX Runtime",
            f">= {ORT_SHARE_TARGET:.0%}",
            f"{share:.1%}",
            share >= ORT_SHARE_TARGET,
        ),
    ]


def table(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Rows for run.py's printed table."""
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
    rows = []
    for label, server in result["servers"].items():
        for name, p in server["points"].items():
            rows.append(
                [
                    label,
                    str(server["workers"]),
                    server["runtime"],
                    name,
                    f"{p['requests_per_s']:.0f}",
                    f"{p['rows_per_s']:.0f}",
                    f"{p['p50_ms']:.2f}",
                    f"{p['p90_ms']:.2f}",
                    f"{p['p99_ms']:.2f}",
                    str(p.get("refused", 0)),
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
