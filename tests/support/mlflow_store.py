"""MLflow's own tracking store on a SQLite file, in process: real MLflow records without a server.

Creating the store runs MLflow's schema migrations (seconds); they run once per process into a
template database and each caller gets a copy, so unit tests (and mutation runs, which re-run them
per mutant in forks of one process) pay for them once.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

_template: Path | None = None


def _template_db() -> Path:
    global _template
    if _template is None or not _template.exists():
        from mlflow.tracking import MlflowClient

        directory = Path(tempfile.mkdtemp(prefix="mlstack-mlflow-template-"))
        atexit.register(shutil.rmtree, directory, True)
        database = directory / "mlflow.db"
        MlflowClient(tracking_uri=f"sqlite:///{database}").search_experiments()  # runs the migrations
        _template = database
    return _template


def sqlite_tracking_uri(directory: Path) -> str:
    """A fresh, empty MLflow tracking store in `directory`; returns its `sqlite:///` URI."""
    directory.mkdir(parents=True, exist_ok=True)
    database = directory / "mlflow.db"
    shutil.copyfile(_template_db(), database)
    return f"sqlite:///{database}"
