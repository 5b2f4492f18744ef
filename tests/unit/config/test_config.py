"""Config: file, env and CLI overrides, in that order."""

from __future__ import annotations

import pytest

from mlstack.config import load_config, parse_set_options, select_candidates


def test_defaults_load_from_the_repo_file() -> None:
    config = load_config(environ={})
    assert config.project.registered_model == "wine-classifier"
    assert config.project.champion_alias == "champion"
    names = {c.estimator for c in config.training.candidates}
    assert {
        "RandomForestClassifier",
        "GradientBoostingClassifier",
        "SVC",
        "KNeighborsClassifier",
        "LogisticRegression",
    } <= names
    svc = next(c for c in config.training.candidates if c.estimator == "SVC")
    assert svc.params["probability"] is True and svc.scale


def test_env_then_cli_overrides() -> None:
    env = {
        "MLSTACK__GATE__FLOOR": "0.9",
        "MLFLOW_TRACKING_URI": "http://mlflow:5000",
        "MLSTACK__TRAINING__PRIMARY_METRIC": "accuracy",
    }
    config = load_config(environ=env, overrides=parse_set_options(["gate.floor=0.95"]))
    assert config.gate.floor == 0.95  # CLI beats env
    assert config.training.primary_metric == "accuracy"
    assert config.mlflow.tracking_uri == "http://mlflow:5000"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"gate.floor": 1.5}, "floor"),
        ({"training.primary_metric": "auc"}, "primary_metric"),
        ({"gate.flor": 0.9}, "flor"),
        ({"data.source": "parquet"}, "source"),
    ],
)
def test_invalid_values_are_refused_with_the_key_named(override: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_config(environ={}, overrides=override)


def test_set_option_syntax_errors() -> None:
    with pytest.raises(ValueError, match="key=value"):
        parse_set_options(["gate.floor"])


def test_select_candidates_keeps_config_order_and_rejects_unknown() -> None:
    config = load_config(environ={})
    kept = select_candidates(config, ["svc", "random_forest"])
    assert [c.name for c in kept.training.candidates] == ["random_forest", "svc"]
    with pytest.raises(ValueError, match="xgboost"):
        select_candidates(config, ["xgboost"])


def test_flat_dict_has_every_section() -> None:
    flat = load_config(environ={}).to_flat_dict()
    assert flat["gate.floor"] == "0.85"
    assert flat["project.registered_model"] == "wine-classifier"


def test_every_config_key_is_documented() -> None:
    """docs/config.md names every key of every section, so the reference cannot fall behind the code."""
    from pathlib import Path

    from pydantic import BaseModel

    from mlstack.config import Config

    doc = (Path(__file__).resolve().parents[3] / "docs" / "config.md").read_text()
    missing = []
    for section, field in Config.model_fields.items():
        assert f"`{section}`" in doc, section
        model = field.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            missing += [f"{section}.{key}" for key in model.model_fields if f"`{key}" not in doc]
    assert not missing, f"undocumented config keys: {missing}"
