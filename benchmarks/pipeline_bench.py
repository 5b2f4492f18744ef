"""Pipeline wall time: a warm `mlstack run` on the local runtime (MLflow already up), stage by stage."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import Target, clean_environ
from mlstack.runtime.local import ProcessManager
from tests.support.net import free_port

TARGET_S = 60.0
QUICK_MODELS = "random_forest,logistic_regression"
PORT_KEYS = ("api", "exporter", "prometheus", "alertmanager", "grafana", "trigger")
CANDIDATE_PARTS = {
    "fit_s": "training (fit)",
    "log_s": "MLflow: metrics, params, artifacts",
    "onnx_s": "ONNX export + parity check",
    "log_model_s": "MLflow: log_model",
}
DEPLOY_STAGES = ("deploy", "healthcheck", "smoke")


def cli() -> list[str]:
    return [sys.executable, "-m", "mlstack.cli"]


def pipeline_env(state_dir: Path) -> dict[str, str]:
    """An isolated local runtime: own state dir and free ports for every service."""
    mlflow_port = free_port()
    env = clean_environ(
        MLFLOW_TRACKING_URI=f"http://127.0.0.1:{mlflow_port}",
        MLSTACK__SERVICES__STATE_DIR=str(state_dir),
        MLSTACK__SERVICES__MLFLOW_PORT=str(mlflow_port),
    )
    for key in PORT_KEYS:
        env[f"MLSTACK__SERVICES__{key.upper()}_PORT"] = str(free_port())
    return env


def run_pipeline(argv: list[str], env: dict[str, str], log: Path, timeout: float) -> float:
    """One `mlstack run`; returns its wall time. Its output goes to `log`."""
    started = time.perf_counter()
    with log.open("wb") as sink:
        try:
            done = subprocess.run(
                argv, env=env, stdout=sink, stderr=subprocess.STDOUT, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"`mlstack run` did not finish within {timeout:.0f}s; see {log}") from exc
    if done.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"`mlstack run` exited with {done.returncode}:\n{tail}")
    return time.perf_counter() - started


def stop_services(env: dict[str, str], state_dir: Path, log: Path) -> list[str]:
    """`mlstack services stop`; then make sure nothing of ours is left (pid files)."""
    with log.open("ab") as sink:
        subprocess.run(
            [*cli(), "services", "stop"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            timeout=120,
            check=False,
        )
    procs = ProcessManager(state_dir)
    return [name for name in procs.names() if procs.stop(name)]


def breakdown(state: dict[str, Any]) -> dict[str, float]:
    """Where the warm run's time went, grouped: MLflow round-trips, training, ONNX, deploy wait."""
    timings: dict[str, float] = state["timings"]
    parts = dict.fromkeys(CANDIDATE_PARTS.values(), 0.0)
    for candidate in state["candidates"]:
        for key, label in CANDIDATE_PARTS.items():
            parts[label] += float(candidate.get("timings", {}).get(key, 0.0))
    train_other = timings.get("train", 0.0) - sum(parts.values())
    grouped = {
        **parts,
        "train stage: data load, split, other": max(train_other, 0.0),
        "register + gate + promote (MLflow, model reload for scoring)": sum(
            timings.get(s, 0.0) for s in ("register", "gate", "approve", "promote")
        ),
        "deploy wait (deploy, healthcheck, smoke)": sum(timings.get(s, 0.0) for s in DEPLOY_STAGES),
        "platform + validate-data + build": sum(
            timings.get(s, 0.0) for s in ("build", "platform", "validate-data")
        ),
        "drift-report": timings.get("drift-report", 0.0),
    }
    return {k: round(v, 2) for k, v in grouped.items()}


def run(workdir: Path, quick: bool) -> dict[str, Any]:
    """Run `mlstack run` twice (cold, warm) on an isolated local runtime; report the warm run."""
    state_dir = workdir / "state"
    workdir.mkdir(parents=True, exist_ok=True)
    env = pipeline_env(state_dir)
    argv = [*cli(), "run", "--runtime", "local", "--trigger", "manual"]
    if quick:
        argv += ["--models", QUICK_MODELS]
    timeout = 400.0 if quick else 900.0
    try:
        cold_s = run_pipeline(argv, env, workdir / "pipeline-cold.log", timeout)
        warm_s = run_pipeline(argv, env, workdir / "pipeline-warm.log", timeout)
        state = json.loads((state_dir / "pipeline" / "current.json").read_text())
    finally:
        leftovers = stop_services(env, state_dir, workdir / "services-stop.log")
    stage_sum = sum(state["timings"].values())
    outside = {"outside stages: CLI start-up, pipeline-run record, summary": round(warm_s - stage_sum, 2)}
    result: dict[str, Any] = {
        "benchmark": "pipeline",
        "quick": quick,
        "candidates": [c["name"] for c in state["candidates"]],
        "cold_run_s": round(cold_s, 1),
        "warm_run_s": round(warm_s, 1),
        "warm_stage_sum_s": round(stage_sum, 1),
        "warm_stage_timings_s": {k: round(v, 2) for k, v in state["timings"].items()},
        "warm_candidate_timings_s": {
            c["name"]: {k: round(v, 2) for k, v in c.get("timings", {}).items()} for c in state["candidates"]
        },
        "warm_breakdown_s": {**breakdown(state), **outside},
        "warm_results": state["results"],
        "services_left_after_stop": leftovers,
    }
    result["targets"] = [
        Target(
            "warm local pipeline (`mlstack run`), wall time"
            + ("" if not quick else f" (quick: {QUICK_MODELS})"),
            f"<= {TARGET_S:.0f} s",
            f"{warm_s:.1f} s",
            warm_s <= TARGET_S,
        ).as_dict()
    ]
    return result


def table(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    columns = ["warm run", "seconds"]
    rows = [[f"stage {k}", f"{v:.2f}"] for k, v in result["warm_stage_timings_s"].items()]
    rows += [[f"  where: {k}", f"{v:.2f}"] for k, v in result["warm_breakdown_s"].items()]
    rows += [
        ["stage sum", f"{result['warm_stage_sum_s']:.1f}"],
        ["`mlstack run` wall (warm)", f"{result['warm_run_s']:.1f}"],
        ["`mlstack run` wall (cold, starts MLflow)", f"{result['cold_run_s']:.1f}"],
    ]
    return columns, rows
