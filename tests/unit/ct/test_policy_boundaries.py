"""The CT policy at its boundaries: the cooldown's last second, the new-data minimum, the token check,
and the last retrain as MLflow records it.

`last_retrain_at` and `retrain_policy` run against MLflow's own store on a SQLite file, in process
(the `mlflow_store` fixture, no server): the runs, their tags, statuses and end times are real MLflow
records.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from mlstack.config import Config, load_config
from mlstack.contract import (
    ALERT_TRIGGERS,
    TAG_TRIGGER,
    TRIGGER_ACCURACY,
    TRIGGER_DRIFT,
    TRIGGER_MANUAL,
    TRIGGER_PUSH,
    TRIGGER_SCHEDULE,
)
from mlstack.ct import bearer_token_ok, evaluate_policy, last_retrain_at, retrain_policy
from tests.support.mlflow_store import FileStore

NOW = 1_000_000.0
COOLDOWN = 60.0
NEEDED = 50


def config(tmp_path: Path, **overrides: Any) -> Config:
    base = {
        "services.state_dir": str(tmp_path / "state"),
        "ct.cooldown_s": COOLDOWN,
        "data.min_new_labelled_rows": NEEDED,
    }
    return load_config(environ={}, overrides={**base, **overrides})


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    return config(tmp_path)


# -- cooldown --------------------------------------------------------------------------------------


@pytest.mark.parametrize("trigger", ALERT_TRIGGERS)
def test_the_cooldown_holds_until_its_last_instant(cfg: Config, trigger: str) -> None:
    held = evaluate_policy(cfg, trigger, now=NOW, last_retrain_at=math.nextafter(NOW - COOLDOWN, math.inf))
    assert (held.allowed, held.decision) == (False, "cooled-down")
    assert 0 < held.retry_after_s is not None and held.retry_after_s < 1e-6  # type: ignore[operator]
    free = evaluate_policy(cfg, trigger, now=NOW, last_retrain_at=NOW - COOLDOWN)
    assert (free.allowed, free.decision, free.reason, free.retry_after_s) == (
        True, "ran", f"{trigger} retrain allowed", None,
    )  # fmt: skip


def test_the_cooldown_reason_and_retry_time(cfg: Config) -> None:
    held = evaluate_policy(cfg, TRIGGER_DRIFT, now=NOW, last_retrain_at=NOW - 15)
    assert held.retry_after_s == 45.0
    assert held.reason == (
        "cooldown: the last alert-triggered retrain trained 15s ago; ct.cooldown_s = 60 (retry in 45s)"
    )


def test_a_retrain_recorded_in_the_future_holds_for_the_full_cooldown(cfg: Config) -> None:
    # Clocks disagree (MLflow's end time is ahead of ours): count it as just now, never as more
    # than a full cooldown to wait.
    held = evaluate_policy(cfg, TRIGGER_ACCURACY, now=NOW, last_retrain_at=NOW + 300)
    assert held.retry_after_s == COOLDOWN
    assert "trained 0s ago" in held.reason and "retry in 60s" in held.reason


def test_a_sub_second_cooldown_still_applies(tmp_path: Path) -> None:
    short = config(tmp_path, **{"ct.cooldown_s": 0.5})
    held = evaluate_policy(short, TRIGGER_DRIFT, now=NOW, last_retrain_at=NOW - 0.25)
    assert not held.allowed and held.retry_after_s == 0.25
    assert "ct.cooldown_s = 0.5 " in held.reason


def test_no_cooldown_configured_or_none_recorded(tmp_path: Path) -> None:
    off = config(tmp_path, **{"ct.cooldown_s": 0})
    assert evaluate_policy(off, TRIGGER_DRIFT, now=NOW, last_retrain_at=NOW).allowed
    assert evaluate_policy(off, TRIGGER_DRIFT, now=NOW, last_retrain_at=NOW + 10).allowed
    assert evaluate_policy(config(tmp_path), TRIGGER_DRIFT, now=NOW, last_retrain_at=None).allowed


@pytest.mark.parametrize("trigger", [TRIGGER_MANUAL, TRIGGER_PUSH, TRIGGER_SCHEDULE])
def test_the_cooldown_is_for_alerts_only(cfg: Config, trigger: str) -> None:
    verdict = evaluate_policy(cfg, trigger, now=NOW, last_retrain_at=NOW, new_rows=0)
    assert (verdict.allowed, verdict.decision, verdict.reason) == (True, "ran", f"{trigger} retrain allowed")


# -- new data --------------------------------------------------------------------------------------


@pytest.mark.parametrize("trigger", ALERT_TRIGGERS)
def test_exactly_the_required_new_rows_is_enough(cfg: Config, trigger: str) -> None:
    assert evaluate_policy(cfg, trigger, now=NOW, last_retrain_at=None, new_rows=NEEDED).allowed
    short = evaluate_policy(cfg, trigger, now=NOW, last_retrain_at=None, new_rows=NEEDED - 1)
    assert (short.allowed, short.decision, short.retry_after_s) == (False, "skipped", None)
    assert short.reason == (
        f"insufficient new data: 49 new labelled rows < 50 required for a retrain triggered by {trigger}"
    )


def test_no_new_rows_required_means_zero_is_enough(tmp_path: Path) -> None:
    none_needed = config(tmp_path, **{"data.min_new_labelled_rows": 0})
    assert evaluate_policy(none_needed, TRIGGER_DRIFT, now=NOW, last_retrain_at=None, new_rows=0).allowed


def test_the_new_data_rule_is_per_trigger(tmp_path: Path) -> None:
    only_schedule = config(tmp_path, **{"ct.triggers_requiring_new_data": [TRIGGER_SCHEDULE]})
    assert evaluate_policy(only_schedule, TRIGGER_DRIFT, now=NOW, last_retrain_at=None, new_rows=0).allowed
    held = evaluate_policy(only_schedule, TRIGGER_SCHEDULE, now=NOW, last_retrain_at=None, new_rows=0)
    assert held.decision == "skipped"


# -- the webhook token -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        ("Bearer s3cret", True),
        ("bearer s3cret", True),
        ("BEARER s3cret", True),
        ("Bearer s3cret ", True),
        ("Bearer  s3cret", True),
        ("Bearer s3cret2", False),
        ("Bearer s3cre", False),
        ("Bearer ", False),
        ("Bearers3cret", False),
        ("Basic s3cret", False),
        ("s3cret", False),
        ("", False),
        (None, False),
    ],
)
def test_the_bearer_token(header: str | None, ok: bool) -> None:
    assert bearer_token_ok(header, "s3cret") is ok


def test_no_token_configured_refuses_everything() -> None:
    assert bearer_token_ok("Bearer ", "") is False
    assert bearer_token_ok("Bearer x", "") is False


# -- the last retrain, from MLflow -----------------------------------------------------------------


@pytest.fixture
def mlflow(mlflow_store: FileStore) -> MlflowClient:
    return mlflow_store.client()


def record_run(
    client: MlflowClient,
    experiment: str,
    trigger: str,
    start_s: float,
    end_s: float | None,
    status: str = "FINISHED",
) -> None:
    run = client.create_run(experiment, start_time=int(start_s * 1000), tags={TAG_TRIGGER: trigger})
    if end_s is not None:
        client.set_terminated(run.info.run_id, status=status, end_time=int(end_s * 1000))


def test_the_last_retrain_is_the_latest_finished_alert_run(cfg: Config, mlflow: MlflowClient) -> None:
    assert last_retrain_at(cfg, mlflow) is None  # no experiment yet
    experiment = mlflow.create_experiment(cfg.project.experiment)
    assert last_retrain_at(cfg, mlflow) is None  # no runs yet
    record_run(mlflow, experiment, TRIGGER_DRIFT, NOW - 500, NOW - 400)
    record_run(mlflow, experiment, TRIGGER_DRIFT, NOW - 900, NOW - 800)
    assert last_retrain_at(cfg, mlflow) == NOW - 400
    record_run(mlflow, experiment, TRIGGER_ACCURACY, NOW - 300, NOW - 200)
    assert last_retrain_at(cfg, mlflow) == NOW - 200
    # Later runs that do not count: a failed alert run, a scheduled one, one still running.
    record_run(mlflow, experiment, TRIGGER_DRIFT, NOW - 100, NOW - 50, status="FAILED")
    record_run(mlflow, experiment, TRIGGER_SCHEDULE, NOW - 100, NOW - 10)
    record_run(mlflow, experiment, TRIGGER_ACCURACY, NOW - 30, None)
    assert last_retrain_at(cfg, mlflow) == NOW - 200


def test_an_older_trigger_does_not_hide_a_newer_one(cfg: Config, mlflow: MlflowClient) -> None:
    experiment = mlflow.create_experiment(cfg.project.experiment)
    record_run(mlflow, experiment, TRIGGER_DRIFT, NOW - 60, NOW - 5)
    record_run(mlflow, experiment, TRIGGER_ACCURACY, NOW - 300, NOW - 200)
    assert last_retrain_at(cfg, mlflow) == NOW - 5


def test_retrain_policy_looks_up_the_cooldown_in_mlflow(cfg: Config, mlflow: MlflowClient) -> None:
    experiment = mlflow.create_experiment(cfg.project.experiment)
    record_run(mlflow, experiment, TRIGGER_DRIFT, time.time() - 20, time.time() - 10)
    held = retrain_policy(cfg, TRIGGER_ACCURACY, new_rows=NEEDED, client=mlflow)
    assert held.decision == "cooled-down" and 45 < (held.retry_after_s or 0) <= 50
    assert retrain_policy(cfg, TRIGGER_SCHEDULE, new_rows=0, client=mlflow).allowed
    starved = retrain_policy(cfg, TRIGGER_DRIFT, new_rows=0, client=mlflow)
    assert starved.decision == "cooled-down"  # the cooldown is reported first


def test_retrain_policy_applies_the_new_data_rule(cfg: Config, mlflow: MlflowClient) -> None:
    mlflow.create_experiment(cfg.project.experiment)  # no retrain recorded: no cooldown
    starved = retrain_policy(cfg, TRIGGER_DRIFT, new_rows=NEEDED - 1, client=mlflow)
    assert (starved.allowed, starved.decision) == (False, "skipped")
    assert retrain_policy(cfg, TRIGGER_DRIFT, new_rows=NEEDED, client=mlflow).allowed


def test_retrain_policy_with_a_sub_second_cooldown_still_looks_it_up(
    tmp_path: Path, mlflow: MlflowClient
) -> None:
    short = config(tmp_path, **{"ct.cooldown_s": 0.5})
    experiment = mlflow.create_experiment(short.project.experiment)
    record_run(mlflow, experiment, TRIGGER_DRIFT, time.time() - 1, time.time() + 60)
    assert retrain_policy(short, TRIGGER_DRIFT, new_rows=NEEDED, client=mlflow).decision == "cooled-down"


def test_retrain_policy_does_not_ask_mlflow_when_the_cooldown_cannot_apply(tmp_path: Path) -> None:
    # A tracking store that cannot be opened (its "directory" is a file): a lookup raises at once.
    (tmp_path / "not-a-dir").touch()
    nowhere = f"sqlite:///{tmp_path / 'not-a-dir' / 'mlflow.db'}"
    unreachable = config(tmp_path, **{"mlflow.tracking_uri": nowhere, "ct.cooldown_s": 0})
    assert retrain_policy(unreachable, TRIGGER_DRIFT, new_rows=NEEDED).allowed
    alerting = config(tmp_path, **{"mlflow.tracking_uri": nowhere})
    assert retrain_policy(alerting, TRIGGER_SCHEDULE, new_rows=0).allowed
    with pytest.raises(FileExistsError):  # the lookup did happen
        retrain_policy(alerting, TRIGGER_DRIFT, new_rows=NEEDED)
