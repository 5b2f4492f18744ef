"""The servers under test: a trained throwaway registry, our predictor, `mlflow models serve` and the
framework's ceiling (a bare app on our server stack). MLServer lives in benchmarks/mlserver.py."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import requests
import sqlalchemy.exc
import yaml
from mlflow.tracking import MlflowClient

from benchmarks.common import Child, child_process, clean_environ, library_output_hidden
from benchmarks.profiling import PREDICTOR_BUCKETS, profile_under_load
from benchmarks.wrk import LoadResult, post_load
from mlstack.config import Config, DataConfig
from mlstack.contract import CONFIG_ENV, ONNX_SKIPPED, TAG_CANDIDATE, TAG_ONNX_PARITY
from mlstack.data import load_base_dataset
from mlstack.registry import move_alias
from mlstack.runtime.local import LocalRuntime, api_command
from mlstack.store import PredictionStore
from tests.support.mlflow_server import MlflowServer, start_mlflow_server
from tests.support.net import free_port
from tests.support.pipeline import isolated_config, run_training

SKLEARN_ALIAS = "bench-sklearn"  # same model as the champion, tagged so the predictor must use sklearn
BATCH_ROWS = 100
START_TIMEOUT_S = 240.0
PREDICTOR_APP = "mlstack_api.main:app"  # the ASGI app in the local runtime's api_command (`--app`)


@dataclass
class Bodies:
    """The same wine rows in each server's request format, single-row and batch."""

    features: list[str]
    rows: list[list[float]]

    @classmethod
    def from_wine(cls, batch: int = BATCH_ROWS) -> Bodies:
        frame = load_base_dataset(DataConfig()).features
        picked = frame.sample(batch, replace=len(frame) < batch, random_state=0)
        return cls([str(c) for c in frame.columns], picked.to_numpy(dtype=float).tolist())

    def matrix(self) -> np.ndarray:
        return np.asarray(self.rows, dtype=np.float32)

    def mlstack(self, rows: int) -> bytes:
        instances = [dict(zip(self.features, row, strict=True)) for row in self.rows[:rows]]
        return json.dumps({"instances": instances}).encode()

    def mlflow(self, rows: int) -> bytes:
        return json.dumps({"dataframe_split": {"columns": self.features, "data": self.rows[:rows]}}).encode()

    def v2(self, rows: int) -> bytes:
        """Open Inference Protocol v2 with the `pd` content type: one named FP64 input per feature.

        The champion's pipeline selects its columns by name, so MLServer must build a DataFrame
        (a bare [rows, features] tensor reaches sklearn as a numpy array and fails there).
        """
        columns = list(zip(*self.rows[:rows], strict=True))
        inputs = [
            {"name": name, "shape": [rows], "datatype": "FP64", "data": list(column)}
            for name, column in zip(self.features, columns, strict=True)
        ]
        return json.dumps({"parameters": {"content_type": "pd"}, "inputs": inputs}).encode()


@dataclass
class BenchRegistry:
    """A throwaway MLflow server whose `@champion` was trained by the real pipeline stages."""

    server: MlflowServer
    workdir: Path
    model_name: str
    champion: dict[str, Any]
    sklearn_version: str
    champion_alias: str

    @property
    def tracking_uri(self) -> str:
        return self.server.url

    @property
    def champion_uri(self) -> str:
        """`models:/<name>@<champion alias>`: how every server under test is pointed at the champion."""
        return f"models:/{self.model_name}@{self.champion_alias}"

    def config(self, state_dir: Path, **overrides: Any) -> Config:
        return isolated_config(self.tracking_uri, state_dir, **overrides)


@contextmanager
def trained_registry(workdir: Path) -> Iterator[BenchRegistry]:
    """Start MLflow on a free port, train and promote a champion, add an sklearn-only version of it."""
    server = start_mlflow_server(workdir / "mlflow")
    try:
        config = isolated_config(server.url, workdir / "train-state")
        with library_output_hidden():
            state = run_training(config, force=True)
        if not state.promoted:
            raise RuntimeError(f"the training stages promoted nothing: {state.results}")
        client = MlflowClient(server.url)
        name = config.project.registered_model
        champ = client.get_model_version_by_alias(name, config.project.champion_alias)
        # The fallback path: same run, same model, but parity not proven, so the predictor loads sklearn.
        mlflow.set_tracking_uri(server.url)
        with library_output_hidden():
            fallback = mlflow.register_model(
                str(champ.source),
                name,
                tags={TAG_ONNX_PARITY: ONNX_SKIPPED, TAG_CANDIDATE: "sklearn-fallback"},
            )
        move_alias(client, name, SKLEARN_ALIAS, str(fallback.version), "benchmark: sklearn fallback")
        candidate = state.candidates[0]
        champion = {
            "name": name,
            "version": str(champ.version),
            "candidate": (champ.tags or {}).get(TAG_CANDIDATE, candidate.name),
            "onnx_parity": (champ.tags or {}).get(TAG_ONNX_PARITY),
            "run_id": champ.run_id,
            "training_timings_s": {k: round(v, 2) for k, v in candidate.timings.items()},
        }
        yield BenchRegistry(
            server, workdir, name, champion, str(fallback.version), config.project.champion_alias
        )
    finally:
        server.stop()


@dataclass
class Server:
    """A server under load: where to POST, how it was configured, and every row sent to it."""

    label: str
    url: str
    path: str
    workers: int
    runtime: str
    child: Child
    rows_completed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def predict_url(self) -> str:
        return self.url + self.path

    def load(self, body: bytes, rows: int, connections: int, seconds: float) -> LoadResult:
        """One wrk load point against this server (rows are counted for the prediction-log check)."""
        # Non-2xx answers (e.g. our predictor's 503 + Retry-After when it cannot take a batch) are
        # counted and reported for every server; a point with no 2xx answer at all is broken.
        result = post_load(self.predict_url, body, rows, connections, seconds, allow_non_2xx=True)
        self.rows_completed += result.requests * rows
        return result

    def profile(self, body: bytes, rows: int, connections: int, seconds: float, out: Path) -> dict[str, Any]:
        """py-spy this server (all its processes) during one load point; the point is not reported."""
        buckets = PREDICTOR_BUCKETS if self.label == "mlstack api" else None
        return profile_under_load(
            self.child.process.pid, lambda: self.load(body, rows, connections, seconds), seconds, out, buckets
        )

    def post(self, body: bytes) -> dict[str, Any]:
        response = requests.post(
            self.predict_url, data=body, headers={"Content-Type": "application/json"}, timeout=30
        )
        response.raise_for_status()
        return dict(response.json())


def ready_everywhere(url: str, consecutive: int = 12) -> bool:
    """`consecutive` fresh-connection 200s in a row, so every worker (not just one) has a model."""
    return all(requests.get(url, timeout=3).status_code == 200 for _ in range(consecutive))


@contextmanager
def mlstack_api(
    registry: BenchRegistry, workdir: Path, workers: int, alias: str | None = None, **overrides: Any
) -> Iterator[Server]:
    """Our predictor, started with the local runtime's own command line (uvicorn --workers N).

    The same `workdir` again is the same state (and SQLite prediction store): a restart.
    """
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    config = registry.config(
        workdir / "state",
        **{
            "api.workers": workers,
            "services.api_port": port,
            "project.champion_alias": alias or registry.champion_alias,
            **overrides,
        },
    )
    (service,) = [s for s in LocalRuntime(config).app_services(config) if s.name == "api"]
    config_file = workdir / "mlstack-api.yaml"
    config_file.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    env = clean_environ(**{CONFIG_ENV: str(config_file), **service.env})  # as the local runtime runs it
    base = f"http://127.0.0.1:{port}"
    with child_process(
        f"mlstack-api ({workers} workers)",
        service.command,
        workdir / "api.log",
        env,
        ready=lambda: ready_everywhere(service.health_url),
        timeout=START_TIMEOUT_S,
    ) as child:
        served = requests.get(f"{base}/version", timeout=5).json()["model"]
        server = Server("mlstack api", base, "/predict", workers, str(served["runtime"]), child)
        server.extra.update(version=str(served["version"]), store_url=config.prediction_store_url)
        yield server


def logged_predictions(server: Server) -> int:
    """Rows the predictor committed to its store (read after it stopped and drained)."""
    store = PredictionStore(server.extra["store_url"])
    try:
        return store.count_predictions()
    except sqlalchemy.exc.OperationalError:  # log disabled: the table was never created
        return 0
    finally:
        store.dispose()


CEILING_APP = "benchmarks.ceiling_app:app"


@contextmanager
def ceiling_app(workdir: Path, workers: int) -> Iterator[Server]:
    """The framework's ceiling: a bare FastAPI app under the predictor's exact uvicorn command line."""
    port = free_port()
    argv = [CEILING_APP if arg == PREDICTOR_APP else arg for arg in api_command(port, workers)]
    if CEILING_APP not in argv:
        raise RuntimeError(f"the predictor's command line no longer names {PREDICTOR_APP}: {argv}")
    base = f"http://127.0.0.1:{port}"
    with child_process(
        f"bare FastAPI app ({workers} workers)",
        argv,
        workdir / f"ceiling-{workers}.log",
        clean_environ(),
        ready=lambda: ready_everywhere(f"{base}/healthz"),
        timeout=START_TIMEOUT_S,
    ) as child:
        yield Server("bare FastAPI app", base, "/predict", workers, "none (constant)", child)


@contextmanager
def mlflow_serve(registry: BenchRegistry, workdir: Path, workers: int) -> Iterator[Server]:
    """`mlflow models serve -m models:/<name>@<champion alias> --env-manager local` on a free port."""
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "mlflow",
        "models",
        "serve",
        "-m",
        registry.champion_uri,
        "--env-manager",
        "local",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-w",
        str(workers),
    ]
    base = f"http://127.0.0.1:{port}"
    # mlflow execs `uvicorn` from PATH: the virtualenv's bin directory must come first.
    bin_dir = str(Path(sys.executable).parent)
    env = clean_environ(
        MLFLOW_TRACKING_URI=registry.tracking_uri,
        MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
        PATH=os.pathsep.join([bin_dir, os.environ.get("PATH", "")]),
    )
    with child_process(
        f"mlflow models serve ({workers} workers)",
        argv,
        workdir / f"mlflow-serve-{workers}.log",
        env,
        ready=lambda: ready_everywhere(f"{base}/ping"),
        timeout=START_TIMEOUT_S,
    ) as child:
        yield Server("mlflow models serve", base, "/invocations", workers, "pyfunc (sklearn)", child)
