"""A file-backed MLflow (SQLite tracking + registry, artifacts in a directory): no server process.

Unit tests of the modules that talk to MLflow use it: the real MLflow client and store, so names,
aliases, tags and error codes are MLflow's own, at the cost of a file rather than a server. Creating
MLflow's tables takes seconds, so one template database is migrated per session and copied per test.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient

from mlstack.config import Config
from tests.support.pipeline import isolated_config


@dataclass(frozen=True)
class FileStore:
    """One SQLite MLflow database and its artifact directory."""

    root: Path

    @property
    def uri(self) -> str:
        return f"sqlite:///{self.root / 'mlflow.db'}"

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    def client(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    def experiment(self, name: str) -> str:
        """The id of experiment `name`, created with its artifacts under this store (never ./mlruns)."""
        client = self.client()
        found = client.get_experiment_by_name(name)
        if found is not None:
            return str(found.experiment_id)
        return client.create_experiment(name, artifact_location=(self.artifacts / name).as_uri())

    def register(self, name: str, count: int) -> list[str]:
        """`count` new versions of registered model `name`, each from a run of its own (no model files)."""
        client = self.client()
        experiment = self.experiment(name)
        if not client.search_registered_models(f"name = '{name}'"):
            client.create_registered_model(name)
        versions = []
        for _ in range(count):
            run = client.create_run(experiment)
            source = f"{run.info.artifact_uri}/model"
            versions.append(str(client.create_model_version(name, source, run_id=run.info.run_id).version))
        return versions

    def config(self, **overrides: Any) -> Config:
        """The project config on this store, with its own state dir and the experiments created here."""
        config = isolated_config(self.uri, self.root / "state", **overrides)
        self.experiment(config.project.experiment)
        self.experiment(f"{config.project.experiment}-pipeline")
        return config


# Migrated once per process: a mutation run (make mutation) runs a pytest session per mutant, each in
# a fork of one process, and would otherwise pay for the migrations every time.
_migrated: Path | None = None


def migrated_template(root: Path) -> Path:
    """MLflow's tables in `root/mlflow.db` (created once per process); the file to copy for each test."""
    global _migrated
    if _migrated is None or not _migrated.exists():
        directory = Path(tempfile.mkdtemp(prefix="mlstack-mlflow-template-"))
        atexit.register(_remove, directory, os.getpid())
        FileStore(directory).client().search_experiments()  # runs the migrations
        _migrated = directory / "mlflow.db"
    root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_migrated, root / "mlflow.db")
    return root / "mlflow.db"


def _remove(directory: Path, owner: int) -> None:
    if os.getpid() == owner:  # not in a forked child that exits normally
        shutil.rmtree(directory, ignore_errors=True)


def file_store(template: Path, root: Path) -> FileStore:
    """A fresh store under `root`, copied from the migrated template database."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, root / "mlflow.db")
    return FileStore(root)
