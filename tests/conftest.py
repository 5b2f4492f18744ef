"""Shared fixtures: a real MLflow server with a trained champion, reused across the session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest

from tests.support.mlflow_server import MlflowServer, start_mlflow_server
from tests.support.mlflow_store import FileStore, file_store, migrated_template
from tests.support.pipeline import TrainedRegistry, isolated_config, run_training


@pytest.fixture(scope="session")
def trained_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrainedRegistry]:
    """A real MLflow server (SQLite) with wine-classifier@champion trained by the real pipeline stages.

    Tests that move aliases should train their own versions with `train_and_promote()`; tests that
    need to stop MLflow must use the `mlflow_server` fixture instead, never this shared one.
    """
    root = tmp_path_factory.mktemp("trained-registry")
    server = start_mlflow_server(root / "mlflow")
    try:
        state_dir = root / "state"
        state = run_training(isolated_config(server.url, state_dir))
        assert state.promoted, state.results
        yield TrainedRegistry(server=server, state_dir=state_dir, first_version=str(state.registered_version))
    finally:
        server.stop()


@pytest.fixture(scope="session")
def shared_mlflow(trained_registry: TrainedRegistry) -> MlflowServer:
    """The session's MLflow server; tests on it must use their own model names (`unique_names`)."""
    return trained_registry.server


@pytest.fixture
def unique_names(request: pytest.FixtureRequest) -> dict[str, str]:
    """Registered-model and experiment names of this test's own, for use on the shared server."""
    name = "t-" + "".join(ch if ch.isalnum() else "-" for ch in request.node.name)[:80]
    return {"project.registered_model": name, "project.experiment": name}


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[MlflowServer]:
    """A fresh, empty MLflow server of this test's own, which the test may stop and restart."""
    server = start_mlflow_server(tmp_path / "mlflow")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def _mlflow_store_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return migrated_template(tmp_path_factory.mktemp("mlflow-template"))


@pytest.fixture
def mlflow_store(
    _mlflow_store_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FileStore]:
    """A fresh file-backed MLflow (SQLite + artifact dir) of this test's own: no server.

    The working directory is the test's tmp dir, so nothing MLflow defaults to (./mlruns) lands in
    the repository, and the process-wide tracking URI is restored afterwards.
    """
    monkeypatch.chdir(tmp_path)
    previous = mlflow.get_tracking_uri()
    try:
        yield file_store(_mlflow_store_template, tmp_path / "mlflow")
    finally:
        mlflow.set_tracking_uri(previous)
