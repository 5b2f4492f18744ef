"""Crash durability: SIGKILL the predictor under full load, restart it, count acknowledged predictions lost.

A separate process (wrk with benchmarks/lua/record_ids.lua) loads the predictor at 8 connections
and writes down, flushed line by line, every prediction id that a 2xx answer acknowledged. Mid-load
the predictor's whole process group (uvicorn and every worker) gets SIGKILL, as from the OOM killer.
The predictor is started again on the same store and stopped gracefully (whatever it recovers at
start is in by then); then every acknowledged id is looked up in the store. "Acknowledged means
stored": the target is 0 missing, for SQLite and for PostgreSQL (a throwaway cluster run as the
`postgres` user; it is the predictor that is killed, not PostgreSQL).
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.common import Target
from benchmarks.predictor_bench import TARGET_CONNECTIONS
from benchmarks.serving import BATCH_ROWS, BenchRegistry, Bodies, mlstack_api
from benchmarks.wrk import read_acks, start_recording_load
from mlstack.store import PredictionStore
from tests.support.postgres import pg_bin_dir, postgres_cluster

STORES = ("sqlite", "postgresql")
KILL_AFTER = 0.5  # share of the load's duration after which SIGKILL hits
DRAIN_S = 0.5  # after the kill, answers already on the wire are still read and recorded
MIN_ANSWERS = 20  # the kill waits (within the load's duration) for at least this many acknowledged answers


def load_seconds(quick: bool, seconds: float | None) -> float:
    return min(seconds, 8.0) if seconds is not None else (4.0 if quick else 8.0)


@contextmanager
def store_overrides(store: str) -> Iterator[Callable[[str], dict[str, Any]]]:
    """Config overrides pointing the predictor at a fresh `store` per load kind: SQLite in its state
    dir, or a database of its own in a throwaway PostgreSQL cluster."""
    if store == "sqlite":
        yield lambda _kind: {}  # the default: <state_dir>/predictions.db, one state dir per kind
        return
    with postgres_cluster() as cluster:
        yield lambda kind: {"prediction_store.url": cluster.create_database(f"predictions_{kind}")}


def crash_once(
    registry: BenchRegistry,
    workdir: Path,
    workers: int,
    body: bytes,
    rows: int,
    load_s: float,
    **overrides: Any,
) -> dict[str, Any]:
    """One kill: load, SIGKILL mid-load, restart on the same store, count acknowledged ids not stored."""
    acks_file = workdir / "acks.txt"
    acks_file.unlink(missing_ok=True)
    with mlstack_api(registry, workdir, workers, **overrides) as server:
        store_url = str(server.extra["store_url"])
        load = start_recording_load(server.predict_url, body, TARGET_CONNECTIONS, load_s, acks_file)
        started = time.monotonic()
        try:
            kill_at = started + load_s * KILL_AFTER
            while load.poll() is None and time.monotonic() < started + load_s:
                if time.monotonic() >= kill_at and read_acks(acks_file).answers_2xx >= MIN_ANSWERS:
                    break
                time.sleep(0.05)
            before_kill = read_acks(acks_file)
            killed_after = time.monotonic() - started
            server.child.kill()
            time.sleep(DRAIN_S)
        finally:
            if load.poll() is None:
                load.send_signal(signal.SIGINT)  # wrk stops and reports
            try:
                load.communicate(timeout=load_s + 30)
            except subprocess.TimeoutExpired:
                load.kill()
                load.communicate()
    acks = read_acks(acks_file)
    if acks.answers_2xx and len(acks.ids) < acks.answers_2xx * rows:
        raise RuntimeError(
            f"{acks.answers_2xx} 2xx answers carried only {len(acks.ids)} distinct prediction ids "
            f"(expected {rows} per answer): has /predict's answer format changed? ({acks_file})"
        )
    if before_kill.answers_2xx == 0:
        raise RuntimeError(
            f"no prediction was acknowledged before the kill ({killed_after:.1f}s into the load)"
        )
    restart = time.monotonic()
    with mlstack_api(registry, workdir, workers, **overrides):
        restart_s = time.monotonic() - restart
    store = PredictionStore(store_url)
    try:
        stored = store.prediction_ids()
    finally:
        store.dispose()
    missing = acks.ids - stored
    return {
        "rows_per_request": rows,
        "killed_after_s": round(killed_after, 2),
        "acknowledged_rows_per_s_before_kill": round(len(before_kill.ids) / max(killed_after, 1e-9), 1),
        "answers_2xx": acks.answers_2xx,
        "non_2xx": acks.non_2xx,
        "acknowledged": len(acks.ids),
        "acknowledged_after_kill_signal": len(acks.ids - before_kill.ids),
        "stored": len(stored),
        "stored_not_acknowledged": len(stored - acks.ids),
        "missing": len(missing),
        "missing_examples": sorted(missing)[:5],
        "restart_s": round(restart_s, 1),
    }


def run(
    registry: BenchRegistry, workdir: Path, quick: bool, workers: int = 1, seconds: float | None = None
) -> dict[str, Any]:
    """Kill under single-row and batch-100 load, for each store; a store that cannot run here is skipped."""
    load_s = load_seconds(quick, seconds)
    bodies = Bodies.from_wine()
    kinds = {"single": (bodies.mlstack(1), 1), f"batch{BATCH_ROWS}": (bodies.mlstack(BATCH_ROWS), BATCH_ROWS)}
    stores: dict[str, Any] = {}
    for store in STORES:
        if store == "postgresql" and pg_bin_dir() is None:
            stores[store] = {"skipped": "PostgreSQL server binaries (initdb, pg_ctl) not found"}
            continue
        with store_overrides(store) as overrides:
            stores[store] = {
                kind: crash_once(
                    registry, workdir / store / kind, workers, body, rows, load_s, **overrides(kind)
                )
                for kind, (body, rows) in kinds.items()
            }
        for kind, found in stores[store].items():
            print(
                f"   {store} {kind}: {found['missing']} of {found['acknowledged']} acknowledged missing "
                f"(killed {found['killed_after_s']} s into the load)",
                flush=True,
            )
    result: dict[str, Any] = {
        "benchmark": "crash",
        "workers": workers,
        "connections": TARGET_CONNECTIONS,
        "load_seconds": load_s,
        "stores": stores,
    }
    result["targets"] = [target(store, found).as_dict() for store, found in stores.items()]
    return result


def target(store: str, found: dict[str, Any]) -> Target:
    name = f"SIGKILL under load, {store}: acknowledged predictions missing after restart"
    if "skipped" in found:
        return Target(name, "0", f"skipped: {found['skipped']}", False, skipped=True)
    missing = sum(k["missing"] for k in found.values())
    detail = ", ".join(f"{kind} {k['missing']:,} of {k['acknowledged']:,}" for kind, k in found.items())
    return Target(name, "0", f"{missing:,} ({detail})", missing == 0)


def table(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    columns = [
        "store",
        "load",
        "killed after s",
        "acked rows/s before kill",
        "acknowledged",
        "stored",
        "missing",
        "in flight (stored, not acked)",
        "non-2xx",
        "restart s",
    ]
    rows = []
    for store, found in result["stores"].items():
        if "skipped" in found:
            rows.append([store, "skipped", found["skipped"], *[""] * 7])
            continue
        for kind, k in found.items():
            statuses = ", ".join(f"{n} x {s}" for s, n in sorted(k["non_2xx"].items())) or "0"
            rows.append(
                [
                    store,
                    f"{kind} c{result['connections']}",
                    f"{k['killed_after_s']:.1f}",
                    f"{k['acknowledged_rows_per_s_before_kill']:.0f}",
                    f"{k['acknowledged']:,}",
                    f"{k['stored']:,}",
                    f"{k['missing']:,}",
                    f"{k['stored_not_acknowledged']:,}",
                    statuses,
                    f"{k['restart_s']:.1f}",
                ]
            )
    return columns, rows
