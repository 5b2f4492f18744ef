"""`mlstack feedback list|show|exclude|restore` on a real SQLite prediction store (no MLflow needed)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from mlstack.cli import app
from mlstack.data import load_base_dataset
from mlstack.feature_types import infer_schema
from mlstack.quarantine import audit_entries, check_rows, decisions, labelled_rows, record_check
from mlstack.store import PredictionRecord, PredictionStore
from tests.support.pipeline import isolated_config

CONFIG = isolated_config("http://127.0.0.1:9", Path("/nonexistent"))
DATASET = load_base_dataset(CONFIG.data)
SCHEMA = infer_schema(DATASET.features, DATASET.target, DATASET.class_names, "target")
TYPICAL: dict[str, Any] = {f.name: f.typical for f in SCHEMA.features}


def invoke(state: Path, *args: str) -> Result:
    return CliRunner().invoke(app, ["feedback", *args], env={"MLSTACK__SERVICES__STATE_DIR": str(state)})


def quarantined_store(state: Path) -> PredictionStore:
    """p0 usable, p1 absurd (quarantined by a pipeline run), p2 usable; all labelled."""
    store = PredictionStore(f"sqlite:///{state / 'predictions.db'}")
    store.create_schema()
    now = time.time()
    rows = [TYPICAL, {**TYPICAL, "alcohol": 1e6}, TYPICAL]
    records = [
        PredictionRecord(f"p{i}", now + i, "wine", "1", r, 0, [1.0, 0.0, 0.0]) for i, r in enumerate(rows)
    ]
    store.insert_predictions(records)
    for record in records:
        assert store.add_feedback(record.id, 0, now + 10)
    record_check(store, check_rows(labelled_rows(store), SCHEMA, {0, 1, 2}, decisions(store)), "run-1")
    return store


def test_without_a_store_the_commands_say_so(tmp_path: Path) -> None:
    result = invoke(tmp_path, "list")
    assert result.exit_code == 1 and "no prediction store" in result.output


def test_list_show_exclude_restore_with_an_audit_trail(tmp_path: Path) -> None:
    store = quarantined_store(tmp_path)
    try:
        listed = invoke(tmp_path, "list")
        assert listed.exit_code == 0, listed.output
        assert "1 rows (excluded out_of_range: 1)" in listed.output
        assert "p1" in listed.output and "alcohol: out of range (1000000.0)" in listed.output
        assert "p0" not in listed.output.split("\n", 2)[2]

        shown = invoke(tmp_path, "show", "p1")
        assert shown.exit_code == 0, shown.output
        assert "alcohol" in shown.output and "1000000.0" in shown.output
        assert "quarantine  excluded (out_of_range) by pipeline" in shown.output
        assert "quarantined pipeline: pipeline run-1" in shown.output

        restored = invoke(tmp_path, "restore", "p1", "--reason", "lab confirmed the value")
        assert restored.exit_code == 0, restored.output
        assert "p1: restored by user:" in restored.output and "back in the training data" in restored.output
        assert invoke(tmp_path, "list").output.startswith("no quarantined feedback")
        assert "restored" in invoke(tmp_path, "list", "--all").output

        excluded = invoke(tmp_path, "exclude", "p0", "--reason", "label from the broken batch")
        assert excluded.exit_code == 0 and "left out of the training data" in excluded.output
        assert "p0" in invoke(tmp_path, "list", "--kind", "operator").output

        refused = invoke(tmp_path, "restore", "p2")
        assert refused.exit_code == 1 and "not quarantined; nothing to restore" in refused.output
        unknown = invoke(tmp_path, "show", "nope")
        assert unknown.exit_code == 1 and "no prediction 'nope'" in unknown.output
        assert invoke(tmp_path, "exclude", "p0").exit_code == 2  # --reason is required

        actions = [(e["prediction_id"], e["action"]) for e in audit_entries(store)]
        assert actions == [("p1", "quarantined"), ("p1", "restored"), ("p0", "excluded")]
        trail = invoke(tmp_path, "show", "p1").output
        assert "restored" in trail and "lab confirmed the value" in trail
    finally:
        store.dispose()
