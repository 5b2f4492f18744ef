"""Both tie paths of the gate against a real MLflow server (issue 18: no churn on unchanged data).

A re-run on the champion's own inputs (same data hash, feedback included, and same training config)
reproduces the champion: the gate keeps it and the new version stays `@challenger`. A tie on new data
(labelled feedback added) still promotes. The champion's hashes are read from its model-version tags.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from mlstack import registry
from mlstack.config import Config, training_config_hash
from mlstack.contract import GATE_PASSED, GATE_SAME_AS_CHAMPION, TAG_CONFIG_HASH, TAG_DATA_HASH, TAG_GATE
from mlstack.data import load_base_dataset
from mlstack.store import PredictionRecord, PredictionStore
from tests.support.mlflow_server import MlflowServer
from tests.support.pipeline import isolated_config, run_training

pytestmark = pytest.mark.integration
# Deterministic (lbfgs), and a perfect test score on the wine data with or without a few nudged copies
# of base rows: retraining gives the same score on the same inputs and a tie on the new data.
LOGISTIC = [
    {"name": "logistic_regression", "estimator": "LogisticRegression", "scale": True, "params": {"C": 1.0}}
]


def seeded_config(server: MlflowServer, state_dir: Path, names: dict[str, Any]) -> Config:
    return isolated_config(server.url, state_dir, models=[], **names, **{"training.candidates": LOGISTIC})


def champion_and_challenger(config: Config) -> tuple[str | None, str | None]:
    client = registry.make_client(config)
    champ = registry.champion_version(client, config)
    chall = registry.challenger_version(client, config)
    return (champ.version if champ else None, chall.version if chall else None)


def label_copies_of_base_rows(config: Config, rows: int) -> None:
    """Log `rows` predictions that are base rows nudged by 0.1% and label them correctly (new, clean data)."""
    dataset = load_base_dataset(config.data)
    picked = dataset.features.sample(rows, random_state=7)
    store = PredictionStore(config.prediction_store_url)
    store.create_schema()
    now = time.time()
    records = [
        PredictionRecord(
            f"tie-{i}",
            now,
            config.project.registered_model,
            "1",
            {name: float(value) * 1.001 for name, value in row.items()},
            int(dataset.target[index]),
            [1.0, 0.0, 0.0],
        )
        for i, (index, row) in enumerate(picked.iterrows())
    ]
    store.insert_predictions(records)
    for record in records:
        assert store.add_feedback(record.id, record.prediction, now + 1)
    store.dispose()


def test_a_rerun_on_the_same_inputs_keeps_the_champion(
    shared_mlflow: MlflowServer, unique_names: dict[str, Any], tmp_path: Path
) -> None:
    config = seeded_config(shared_mlflow, tmp_path / "state", unique_names)
    first = run_training(config)
    assert first.promoted and champion_and_challenger(config) == ("1", "1")

    second = run_training(config)
    assert second.gate is not None
    assert second.gate.tie and second.gate.same_inputs, second.gate
    assert not second.promoted and not second.gate.promote
    assert second.gate.reason == "same data and score as champion v1; kept v1"
    assert "beats" not in second.results["gate"]
    assert champion_and_challenger(config) == ("1", "2")  # the challenger stays @challenger

    # Where the champion's hashes come from: its model-version tags, written at registration.
    client = registry.make_client(config)
    name = config.project.registered_model
    v1, v2 = (client.get_model_version(name, v) for v in ("1", "2"))
    assert v1.tags[TAG_DATA_HASH] == v2.tags[TAG_DATA_HASH] == second.data_hash
    assert v1.tags[TAG_CONFIG_HASH] == v2.tags[TAG_CONFIG_HASH] == training_config_hash(config)
    assert (v1.tags[TAG_GATE], v2.tags[TAG_GATE]) == (GATE_PASSED, GATE_SAME_AS_CHAMPION)
    champion_moves = [m for m in registry.history(client, name) if m.alias == config.project.champion_alias]
    assert [(m.from_version, m.to_version) for m in champion_moves] == [(None, "1")]

    # A different training config is new input: the same score then promotes, saying it ties.
    other_c = [{**LOGISTIC[0], "params": {"C": 0.9}}]
    changed = isolated_config(
        shared_mlflow.url, tmp_path / "state", models=[], **unique_names, **{"training.candidates": other_c}
    )
    third = run_training(changed)
    assert third.gate is not None and not third.gate.same_inputs and third.gate.tie, third.gate
    assert third.promoted and third.gate.reason.startswith("ties champion v1")


def test_a_tie_on_new_data_promotes(
    shared_mlflow: MlflowServer, unique_names: dict[str, Any], tmp_path: Path
) -> None:
    config = seeded_config(shared_mlflow, tmp_path / "state", unique_names)
    first = run_training(config)
    assert first.promoted

    label_copies_of_base_rows(config, 20)
    second = run_training(config)
    assert second.data_hash != first.data_hash
    assert second.gate is not None and not second.gate.same_inputs
    # The precondition of this path: both versions score the same on the new test set.
    assert second.gate.tie, second.gate
    assert second.promoted and second.gate.promote
    assert second.gate.reason.startswith("ties champion v1") and "on new data" in second.gate.reason
    assert "+0.0000 (" not in second.gate.reason.replace("(needs +0.0000)", "")
    assert champion_and_challenger(config) == ("2", "2")
    assert int(second.composition["feedback_rows"]) == 20
