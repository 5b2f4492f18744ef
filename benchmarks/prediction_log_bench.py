"""Prediction-log overhead: predictor throughput with the log on vs off (`prediction_store.enabled`).

Both predictors serve the same champion; only the log differs. Non-2xx answers (503 backpressure
when the log cannot buffer a batch) are counted separately and excluded from throughput.
"""

from __future__ import annotations

import statistics
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from benchmarks.common import Target
from benchmarks.predictor_bench import TARGET_CONNECTIONS, Durations
from benchmarks.serving import BATCH_ROWS, BenchRegistry, Bodies, Server, logged_predictions, mlstack_api

LOSS_TARGET = 0.10
LOG_OFF: dict[str, Any] = {"prediction_store.enabled": False}


def run(
    registry: BenchRegistry,
    workdir: Path,
    quick: bool,
    workers: int = 1,
    seconds: float | None = None,
    profile_dir: Path | None = None,
) -> dict[str, Any]:
    """Both servers run side by side; load points alternate on/off so background load hits both alike.

    With `profile_dir`, the log-on server is sampled with py-spy under batch load (writer thread included).
    """
    durations = Durations.for_mode(quick, seconds)
    rounds = 1 if quick else 2
    bodies = Bodies.from_wine()
    kinds = {"single": (bodies.mlstack(1), 1), f"batch{BATCH_ROWS}": (bodies.mlstack(BATCH_ROWS), BATCH_ROWS)}
    off_refused = log_off_refusal(registry, workdir)
    variants: dict[str, dict[str, Any]] = {"on": {}} if off_refused else {"on": {}, "off": LOG_OFF}
    samples: dict[str, dict[str, list[dict[str, Any]]]] = {mode: {} for mode in variants}
    profiles = {}
    with ExitStack() as stack:
        servers: dict[str, Server] = {
            mode: stack.enter_context(mlstack_api(registry, workdir / f"log-{mode}", workers, **overrides))
            for mode, overrides in variants.items()
        }
        for server in servers.values():
            server.load(kinds["single"][0], 1, TARGET_CONNECTIONS, durations.warmup)
        for _ in range(rounds):
            for kind, (body, rows) in kinds.items():
                for mode, server in servers.items():
                    point = server.load(body, rows, TARGET_CONNECTIONS, durations.point)
                    samples[mode].setdefault(kind, []).append(point.as_dict())
        if profile_dir is not None:
            body, rows = kinds[f"batch{BATCH_ROWS}"]
            for mode, server in servers.items():
                out = profile_dir / f"mlstack-api-log-{mode}-batch{BATCH_ROWS}-c{TARGET_CONNECTIONS}.txt"
                profiles[f"log {mode}, batch{BATCH_ROWS} c{TARGET_CONNECTIONS}"] = server.profile(
                    body, rows, TARGET_CONNECTIONS, durations.profile, out
                )
    logged = {mode: logged_predictions(server) for mode, server in servers.items()}
    sent = {mode: server.rows_completed for mode, server in servers.items()}
    summary: dict[str, Any] = {}
    for kind in kinds:

        def median(mode: str, key: str, kind: str = kind) -> float | None:
            points = samples.get(mode, {}).get(kind)
            return round(statistics.median(p[key] for p in points), 2) if points else None

        on, off = median("on", "rows_per_s"), median("off", "rows_per_s")
        summary[kind] = {
            "rows_per_s_log_on": on,
            "rows_per_s_log_off": off,
            "p99_ms_log_on": median("on", "p99_ms"),
            "p99_ms_log_off": median("off", "p99_ms"),
            "non_2xx_log_on": sum(p.get("non_2xx", 0) for p in samples["on"][kind]),
            "throughput_loss": round(1 - on / off, 3) if on is not None and off else None,
        }
    result: dict[str, Any] = {
        "benchmark": "prediction_log",
        "quick": quick,
        "workers": workers,
        "connections": TARGET_CONNECTIONS,
        "seconds_per_point": durations.point,
        "rounds": rounds,
        "log_off_means": off_refused or "prediction_store.enabled=false (the predictor logs nothing)",
        "rows_completed": sent,
        "rows_logged": logged,
        "summary": summary,
        "samples": samples,
        **({"profiles": profiles} if profiles else {}),
    }
    result["targets"] = [
        Target(
            f"prediction-log throughput loss, {kind} (8 conns)",
            f"<= {LOSS_TARGET:.0%}",
            "not measurable: no way to turn the log off"
            if values["throughput_loss"] is None
            else f"{values['throughput_loss']:.1%}",
            values["throughput_loss"] is not None and values["throughput_loss"] <= LOSS_TARGET,
        ).as_dict()
        for kind, values in summary.items()
    ] + [
        Target(
            "prediction log complete (log on)",
            "every answered row is logged",
            f"{logged['on']} logged / {sent['on']} answered",
            logged["on"] >= sent["on"],
        ).as_dict()
    ]
    return result


def log_off_refusal(registry: BenchRegistry, workdir: Path) -> str | None:
    """Why the log-off stand-in cannot be configured (the config may require queue_size >= max_batch)."""
    try:
        registry.config(workdir / "probe-state", **LOG_OFF)
    except ValueError as exc:
        return f"no log-off measurement: the config refuses {LOG_OFF} ({str(exc).splitlines()[-1].strip()})"
    return None


def table(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    def cell(value: float | None, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    columns = [
        "request",
        "rows/s log on",
        "rows/s log off",
        "loss",
        "p99 ms on",
        "p99 ms off",
        "non-2xx (log on)",
    ]
    rows = [
        [
            kind,
            cell(v["rows_per_s_log_on"], ".0f"),
            cell(v["rows_per_s_log_off"], ".0f"),
            cell(v["throughput_loss"], ".1%"),
            cell(v["p99_ms_log_on"], ".2f"),
            cell(v["p99_ms_log_off"], ".2f"),
            str(v.get("non_2xx_log_on", v.get("refused_log_on", 0))),
        ]
        for kind, v in result["summary"].items()
    ]
    logged, completed = result["rows_logged"], result["rows_completed"]
    rows.append(
        ["rows logged / answered (log on)", f"{logged['on']:,} / {completed['on']:,}", "", "", "", "", ""]
    )
    return columns, rows
