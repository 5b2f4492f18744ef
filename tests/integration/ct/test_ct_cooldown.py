"""The CT cooldown read from a real MLflow server: the pipeline itself skips a retrain inside it.

The pure policy and the controller are unit-tested in tests/unit/ct/test_ct_policy.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlstack.ct import last_retrain_at
from tests.support.mlflow_server import MlflowServer
from tests.support.pipeline import isolated_config, run_training


@pytest.mark.integration
def test_validate_data_applies_the_cooldown_from_mlflow(
    shared_mlflow: MlflowServer, unique_names: dict[str, str], tmp_path: Path
) -> None:
    """The Jenkins path: a drift retrain inside the cooldown is skipped by the pipeline itself."""
    overrides = {**unique_names, "ct.cooldown_s": 600, "data.min_new_labelled_rows": 0}
    cfg = isolated_config(shared_mlflow.url, tmp_path / "state", models=["logistic_regression"], **overrides)
    assert last_retrain_at(cfg) is None

    # No labelled feedback yet: an alert-triggered retrain is skipped before training.
    wanting = cfg.model_copy(update={"data": cfg.data.model_copy(update={"min_new_labelled_rows": 10})})
    starved = run_training(wanting, trigger="accuracy")
    assert (
        starved.skipped
        == "insufficient new data: 0 new labelled rows < 10 required for a retrain triggered by accuracy"
    )
    assert starved.registered_version is None and last_retrain_at(cfg) is None

    first = run_training(cfg, trigger="drift")
    assert first.skipped is None and first.promoted, first.results
    recorded = last_retrain_at(cfg)
    assert recorded is not None

    second = run_training(cfg, trigger="drift")
    assert second.skipped is not None and second.skipped.startswith("cooldown:"), second.results
    assert second.results["train"].startswith("skipped") and second.registered_version is None
    assert "ct.cooldown_s = 600" in second.results["validate-data"]

    # A scheduled retrain is not an alert: no cooldown.
    scheduled = run_training(cfg, trigger="schedule")
    assert scheduled.skipped is None and scheduled.registered_version is not None

    # `mlstack ct check` answers with the same policy (exit 10 = held back).
    from mlstack.cli import app

    env = {
        "MLFLOW_TRACKING_URI": shared_mlflow.url,
        "MLSTACK__SERVICES__STATE_DIR": str(tmp_path / "state"),
        "MLSTACK__CT__COOLDOWN_S": "600",
        "MLSTACK__DATA__MIN_NEW_LABELLED_ROWS": "0",
        "MLSTACK__PROJECT__EXPERIMENT": unique_names["project.experiment"],
        "MLSTACK__PROJECT__REGISTERED_MODEL": unique_names["project.registered_model"],
    }
    held = CliRunner().invoke(app, ["ct", "check", "--trigger", "drift"], env=env)
    assert held.exit_code == 10, held.output
    assert held.output.startswith("cooled-down: cooldown:")
    free = CliRunner().invoke(app, ["ct", "check", "--trigger", "schedule"], env=env)
    assert free.exit_code == 0 and free.output.startswith("ran:"), free.output
