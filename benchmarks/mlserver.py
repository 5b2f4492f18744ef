"""MLServer (Seldon's Open Inference Protocol v2 server) serving the same champion, for `make bench`.

MLServer gets a virtualenv of its own: its pins clash with ours (FastAPI 0.115, pandas 3). It is
built once from benchmarks/mlserver-requirements.lock with pip (PyPI) and cached under
`<state_dir>/bench/` by the lock's hash and the Python version. The champion crosses over as
`model.joblib` (what mlserver-sklearn loads); the lock pins the same scikit-learn as ours.

MLServer's own knob for CPUs is `parallel_workers`: 0 runs inference in the HTTP process, N > 0 in
a pool of N worker processes behind it. The benchmark probes which is fastest here.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import joblib
import mlflow
import requests

from benchmarks.common import child_process, clean_environ
from benchmarks.serving import START_TIMEOUT_S, BenchRegistry, Server, ready_everywhere
from mlstack.config import REPO_ROOT, ServicesConfig
from mlstack.contract import STATE_BENCH_DIR
from tests.support.net import free_port

LOCK = Path(__file__).with_name("mlserver-requirements.lock")
VENV = REPO_ROOT / ServicesConfig().state_dir / STATE_BENCH_DIR / "mlserver-venv"
INSTALL_TIMEOUT_S = 1200.0
MODEL = "wine"  # the name MLServer serves the champion under (its URL: /v2/models/wine/infer)
IMPLEMENTATION = "mlserver_sklearn.SKLearnModel"
LABEL = "MLServer"


class MLServerUnavailable(RuntimeError):
    """MLServer's venv could not be built (no PyPI, no pip): MLServer is not measured."""


def lock_key() -> str:
    """What the cached venv was built from: the lock's content and this Python's version."""
    return hashlib.sha256(LOCK.read_bytes() + sys.version.encode()).hexdigest()


def mlserver_binary(venv: Path = VENV) -> Path:
    """The venv's `mlserver` executable; builds the venv first when missing or built from another lock."""
    binary = venv / "bin" / "mlserver"
    stamp = venv / ".mlstack-lock-sha256"
    venv.parent.mkdir(parents=True, exist_ok=True)
    key = lock_key()
    with (venv.parent / f".{venv.name}.build-lock").open("w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)  # a concurrent bench run may be building it right now
        if binary.exists() and stamp.exists() and stamp.read_text().strip() == key:
            return binary
        print(f"-- MLServer: building its venv from {LOCK.name} (once; cached in {venv})", flush=True)
        shutil.rmtree(venv, ignore_errors=True)
        python = venv / "bin" / "python"
        for argv in (
            [sys.executable, "-m", "venv", str(venv)],
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(LOCK)],
        ):
            try:
                done = subprocess.run(
                    argv, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False
                )
            except subprocess.TimeoutExpired as exc:
                raise MLServerUnavailable(f"{' '.join(argv)} took over {INSTALL_TIMEOUT_S:.0f}s") from exc
            if done.returncode != 0:
                shutil.rmtree(venv, ignore_errors=True)
                tail = (done.stderr or done.stdout).strip()[-1500:]
                raise MLServerUnavailable(f"{' '.join(argv[:4])} ... exited {done.returncode}: {tail}")
        if not binary.exists():
            raise MLServerUnavailable(f"{binary} missing after installing {LOCK.name}")
        stamp.write_text(key + "\n")
        return binary


def export_champion(registry: BenchRegistry, model_dir: Path) -> None:
    """The champion's sklearn model as `model.joblib` plus the model-settings.json MLServer reads."""
    model_dir.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(registry.tracking_uri)
    model = mlflow.sklearn.load_model(registry.champion_uri)
    joblib.dump(model, model_dir / "model.joblib")
    settings = {
        "name": MODEL,
        "implementation": IMPLEMENTATION,
        "parameters": {"uri": "./model.joblib", "version": str(registry.champion["version"])},
    }
    (model_dir / "model-settings.json").write_text(json.dumps(settings, indent=2))


@contextmanager
def mlserver(registry: BenchRegistry, workdir: Path, workers: int) -> Iterator[Server]:
    """`mlserver start` on free loopback ports with `parallel_workers=workers`, serving the champion.

    `debug: false` turns uvicorn's per-request access log off, as our predictor runs (--no-access-log).
    """
    binary = mlserver_binary()
    root = workdir / f"mlserver-{workers}"
    export_champion(registry, root / MODEL)
    port = free_port()
    settings = {
        "host": "127.0.0.1",
        "http_port": port,
        "grpc_port": free_port(),
        "metrics_port": free_port(),
        "parallel_workers": workers,
        "debug": False,
    }
    (root / "settings.json").write_text(json.dumps(settings, indent=2))
    base = f"http://127.0.0.1:{port}"
    env = clean_environ()
    for key in [k for k in env if k.startswith("MLSERVER_") or k == "PROMETHEUS_MULTIPROC_DIR"]:
        del env[key]  # settings.json alone configures it
    with child_process(
        f"MLServer (parallel_workers={workers})",
        [str(binary), "start", str(root)],
        root / "mlserver.log",
        env,
        ready=lambda: ready_everywhere(f"{base}/v2/models/{MODEL}/ready"),
        timeout=START_TIMEOUT_S,
        cwd=root,
    ) as child:
        version = requests.get(f"{base}/v2", timeout=5).json().get("version", "?")
        server = Server(LABEL, base, f"/v2/models/{MODEL}/infer", workers, "sklearn (joblib)", child)
        server.extra["mlserver_version"] = str(version)
        yield server
