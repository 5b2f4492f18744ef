"""What the CT controller answers and audits, field by field, and how a finished run is classified.

The audit log is how an operator learns why a retrain did or did not happen, so each entry is pinned
whole (less its timestamps). The pipeline stands in as `GatedRunner` (tests/support/ct.py): a real
pipeline run takes a minute and its only role here is "running" or "done" with an outcome.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from mlstack.config import Config, load_config
from mlstack.contract import TRIGGER_ACCURACY, TRIGGER_DRIFT, TRIGGER_PUSH, TRIGGER_SCHEDULE
from mlstack.ct import AuditLog, PipelineRunner, RunOutcome, Submission, TriggerController
from tests.support.ct import GatedRunner

NOW = 1_000_000.0
TRAINED = RunOutcome(
    "success", 0, 12.34, pipeline_id="p1", reason="pipeline finished", trained=True,
    registered_version="7", promoted=True, awaiting_approval=False, log="/logs/ct-pipeline.log",
)  # fmt: skip


def config(tmp_path: Path) -> Config:
    overrides = {"services.state_dir": str(tmp_path / "state"), "ct.cooldown_s": 60}
    return load_config(environ={}, overrides=overrides)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def controller(
    tmp_path: Path, runner: Any, last: float | None = None
) -> tuple[TriggerController, AuditLog, Clock]:
    cfg = config(tmp_path)
    audit = AuditLog.for_config(cfg)
    clock = Clock()
    return TriggerController(cfg, audit, runner, last_retrain=lambda: last, clock=clock), audit, clock


def entries(audit: AuditLog) -> list[dict[str, Any]]:
    """The audit entries without their timestamps."""
    return [{k: v for k, v in e.items() if k not in ("at", "unix")} for e in audit.entries()]


def finished(outcome: RunOutcome, trigger: str, decision: str) -> dict[str, Any]:
    return {
        "decision": decision,
        "reason": outcome.reason,
        "phase": "finished",
        "trigger": trigger,
        "outcome": outcome.status,
        "exit_code": outcome.exit_code,
        "duration_s": round(outcome.duration_s, 1),
        "pipeline_id": outcome.pipeline_id,
        "registered_version": outcome.registered_version,
        "promoted": outcome.promoted,
        "awaiting_approval": outcome.awaiting_approval,
        "log": outcome.log,
    }


# -- requests ----------------------------------------------------------------------------------------


def test_an_allowed_request_starts_a_run_and_audits_it_whole(tmp_path: Path) -> None:
    runner = GatedRunner(TRAINED)
    ctl, audit, _ = controller(tmp_path, runner)
    answer = ctl.submit(TRIGGER_DRIFT, alerts=["DataDriftDetected"])
    assert answer == Submission("ran", "pipeline started", 202, {})
    assert runner.started.acquire(timeout=10) and ctl.running == TRIGGER_DRIFT
    runner.release()
    assert ctl.wait_idle(10)
    assert ctl.outcomes == [TRAINED] and ctl.running is None
    assert entries(audit) == [
        {
            "decision": "ran", "reason": "pipeline started", "phase": "started", "trigger": TRIGGER_DRIFT,
            "source": "alertmanager", "alerts": ["DataDriftDetected"],
        },
        {**finished(TRAINED, TRIGGER_DRIFT, "ran"), "duration_s": 12.3},
    ]  # fmt: skip


def test_a_held_request_answers_200_with_the_retry_time_and_audits_it(tmp_path: Path) -> None:
    runner = GatedRunner()
    ctl, audit, _ = controller(tmp_path, runner, last=NOW - 47.66)
    answer = ctl.submit(TRIGGER_ACCURACY, source="webhook", alerts=["LiveAccuracyBelowFloor"])
    reason = "cooldown: the last alert-triggered retrain trained 48s ago; ct.cooldown_s = 60 (retry in 12s)"
    assert answer == Submission("cooled-down", reason, 200, {"retry_after_s": 12.3})
    assert runner.calls == []
    assert entries(audit) == [
        {
            "decision": "cooled-down", "reason": reason, "trigger": TRIGGER_ACCURACY, "source": "webhook",
            "alerts": ["LiveAccuracyBelowFloor"],
        }
    ]  # fmt: skip


def test_an_unknown_trigger_is_refused_by_name(tmp_path: Path) -> None:
    ctl, audit, _ = controller(tmp_path, GatedRunner())
    with pytest.raises(ValueError, match=r"^unknown trigger 'retrain-now'$"):
        ctl.submit("retrain-now")
    assert audit.entries() == []


def test_a_run_started_during_the_mlflow_lookup_turns_the_request_into_a_follow_up(tmp_path: Path) -> None:
    """The lookup runs outside the lock; a request that started a run meanwhile wins, this one queues."""
    runner = GatedRunner(TRAINED)
    holder: dict[str, TriggerController] = {}
    raced: list[Submission] = []
    lookups: list[str] = []

    def lookup() -> float | None:
        lookups.append("lookup")
        if len(lookups) == 1:  # the first request's lookup: another request gets in meanwhile
            raced.append(holder["ctl"].submit(TRIGGER_ACCURACY, source="other"))
        return None

    cfg = config(tmp_path)
    ctl = TriggerController(cfg, AuditLog.for_config(cfg), runner, last_retrain=lookup, clock=Clock())
    holder["ctl"] = ctl
    answer = ctl.submit(TRIGGER_DRIFT)
    assert raced[0].decision == "ran"
    assert answer == Submission(
        "coalesced", "a accuracy retrain is running: queued as its one follow-up", 202, {"follow_up": "drift"}
    )
    runner.release()
    runner.release()
    assert ctl.wait_idle(10)


def test_a_lookup_failure_is_logged_and_named_in_the_reason(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> float | None:
        raise ConnectionError("mlflow down")

    cfg = config(tmp_path)
    runner = GatedRunner(TRAINED)
    ctl = TriggerController(cfg, AuditLog.for_config(cfg), runner, last_retrain=broken, clock=Clock())
    with caplog.at_level(logging.WARNING, logger="mlstack.ct"):
        assert ctl.last_retrain() == (None, "MLflow lookup of the last retrain failed (ConnectionError)")
    assert caplog.messages == ["MLflow lookup of the last retrain failed (ConnectionError): mlflow down"]
    answer = ctl.submit(TRIGGER_DRIFT)
    assert answer.reason == "pipeline started; MLflow lookup of the last retrain failed (ConnectionError)"
    runner.release()
    assert ctl.wait_idle(10)


def test_the_last_retrain_is_the_newer_of_mlflow_and_this_process(tmp_path: Path) -> None:
    runner = GatedRunner(TRAINED)
    ctl, _, clock = controller(tmp_path, runner, last=NOW - 500)
    assert ctl.last_retrain() == (NOW - 500, None)
    none, _, _ = controller(tmp_path, GatedRunner(), last=None)
    assert none.last_retrain() == (None, None)
    # A retrain this process ran and that trained counts from when it finished.
    ctl.submit(TRIGGER_DRIFT)
    clock.now = NOW + 5
    runner.release()
    assert ctl.wait_idle(10)
    assert ctl.last_retrain() == (NOW + 5, None)


# -- coalescing ------------------------------------------------------------------------------------


def test_coalesced_requests_are_answered_and_audited_whole(tmp_path: Path) -> None:
    runner = GatedRunner(TRAINED)
    ctl, audit, _ = controller(tmp_path, runner)
    ctl.submit(TRIGGER_DRIFT)
    assert runner.started.acquire(timeout=10)
    queued = ctl.submit(TRIGGER_DRIFT, source="s1", group="g1")
    merged = ctl.submit(TRIGGER_ACCURACY, source="s2")
    assert queued == Submission(
        "coalesced", "a drift retrain is running: queued as its one follow-up", 202, {"follow_up": "drift"}
    )
    assert merged == Submission(
        "coalesced",
        "a drift retrain is running and a follow-up is queued: merged into it",
        202,
        {"follow_up": "accuracy"},
    )
    assert entries(audit)[1:] == [
        {
            "decision": "coalesced", "reason": queued.reason, "trigger": "drift", "source": "s1",
            "running": "drift", "follow_up": "drift", "group": "g1",
        },
        {
            "decision": "coalesced", "reason": merged.reason, "trigger": "accuracy", "source": "s2",
            "running": "drift", "follow_up": "accuracy",
        },
    ]  # fmt: skip
    runner.release()
    assert ctl.wait_idle(10)
    follow_up = entries(audit)[-1]
    assert follow_up == {
        "decision": "cooled-down",
        "reason": (
            "cooldown: the last alert-triggered retrain trained 0s ago; ct.cooldown_s = 60 (retry in 60s)"
        ),
        "trigger": "accuracy",
        "source": "follow-up",
        "coalesced_from": ["s1", "s2"],
    }


def test_among_equally_urgent_triggers_the_first_queued_names_the_follow_up(tmp_path: Path) -> None:
    runner = GatedRunner(RunOutcome("skipped", 0, 1.0, reason="insufficient new data"))
    ctl, _, _ = controller(tmp_path, runner)
    ctl.submit(TRIGGER_DRIFT)
    assert runner.started.acquire(timeout=10)
    ctl.submit(TRIGGER_SCHEDULE)
    assert ctl.submit(TRIGGER_PUSH).extra == {"follow_up": TRIGGER_SCHEDULE}
    assert ctl.pending == TRIGGER_SCHEDULE
    assert ctl.submit(TRIGGER_DRIFT).extra == {"follow_up": TRIGGER_DRIFT}  # more urgent: it takes over
    runner.release()
    assert runner.started.acquire(timeout=10)
    runner.release()
    assert ctl.wait_idle(10)
    assert runner.calls == [TRIGGER_DRIFT, TRIGGER_DRIFT]


def test_a_follow_up_runs_as_itself_and_takes_requests_as_its_own_follow_up(tmp_path: Path) -> None:
    skipped = RunOutcome("skipped", 0, 1.0, reason="insufficient new data: 3 new labelled rows < 50")
    runner = GatedRunner(skipped)
    ctl, audit, _ = controller(tmp_path, runner, last=None)
    ctl.submit(TRIGGER_DRIFT)
    assert runner.started.acquire(timeout=10)
    ctl.submit(TRIGGER_ACCURACY, source="a1")
    runner.release()
    assert runner.started.acquire(timeout=10)  # the follow-up is running
    assert ctl.running == TRIGGER_ACCURACY and ctl.pending is None
    assert ctl.submit(TRIGGER_DRIFT, source="a2").decision == "coalesced"
    runner.release()
    assert runner.started.acquire(timeout=10)
    runner.release()
    assert ctl.wait_idle(10)
    assert runner.calls == [TRIGGER_DRIFT, TRIGGER_ACCURACY, TRIGGER_DRIFT]
    started = [e for e in entries(audit) if e.get("phase") == "started"]
    assert started[1] == {
        "decision": "ran", "reason": "follow-up pipeline started", "phase": "started",
        "trigger": TRIGGER_ACCURACY, "source": "follow-up", "coalesced_from": ["a1"],
    }  # fmt: skip
    assert [e["decision"] for e in entries(audit) if e.get("phase") == "finished"] == ["skipped"] * 3


def test_a_follow_up_started_despite_a_lookup_failure_says_so(tmp_path: Path) -> None:
    lookups: list[int] = []

    def flaky() -> float | None:
        lookups.append(1)
        if len(lookups) > 1:
            raise ConnectionError("mlflow down")
        return None

    cfg = config(tmp_path)
    runner = GatedRunner(RunOutcome("skipped", 0, 1.0, reason="insufficient new data"))
    audit = AuditLog.for_config(cfg)
    ctl = TriggerController(cfg, audit, runner, last_retrain=flaky, clock=Clock())
    ctl.submit(TRIGGER_DRIFT)
    assert runner.started.acquire(timeout=10)
    ctl.submit(TRIGGER_DRIFT)
    runner.release()
    assert runner.started.acquire(timeout=10)
    runner.release()
    assert ctl.wait_idle(10)
    started = [e for e in entries(audit) if e.get("phase") == "started"]
    assert started[1]["reason"] == (
        "follow-up pipeline started; MLflow lookup of the last retrain failed (ConnectionError)"
    )


# -- finished runs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "decision"),
    [
        (TRAINED, "ran"),
        (RunOutcome("failed", 1, 3.0, reason="train: FAILED: boom", log="/l"), "ran"),
        (
            RunOutcome("skipped", 0, 2.0, reason="cooldown: the last alert-triggered retrain ..."),
            "cooled-down",
        ),
        (RunOutcome("skipped", 0, 2.0, reason="insufficient new data: 0 new labelled rows < 50"), "skipped"),
        (RunOutcome("locked", 3, 0.5, reason="another pipeline run holds the lock"), "skipped"),
    ],
)
def test_a_finished_run_is_audited_by_its_outcome(tmp_path: Path, outcome: RunOutcome, decision: str) -> None:
    runner = GatedRunner(outcome)
    ctl, audit, _ = controller(tmp_path, runner)
    ctl.submit(TRIGGER_SCHEDULE)
    runner.release()
    assert ctl.wait_idle(10)
    assert entries(audit)[-1] == finished(outcome, TRIGGER_SCHEDULE, decision)
    assert ctl.outcomes == [outcome]


# -- classifying a run from its exit code and state file -----------------------------------------


@pytest.fixture
def runner(tmp_path: Path) -> PipelineRunner:
    pipeline = PipelineRunner(config(tmp_path), config_file=tmp_path / "config.yaml")
    pipeline.state_path.parent.mkdir(parents=True, exist_ok=True)
    return pipeline


def write_state(runner: PipelineRunner, **state: Any) -> None:
    runner.state_path.write_text(json.dumps(state))


STATE = {
    "pipeline_id": "abc", "started_at": NOW, "candidates": [{"name": "rf"}], "registered_version": "3",
    "promoted": True, "awaiting_approval": False, "skipped": None, "results": {"train": "ok"},
}  # fmt: skip


def test_a_successful_run_is_read_whole(runner: PipelineRunner) -> None:
    write_state(runner, **STATE)
    assert runner.outcome(0, 12.5, started_at=NOW) == RunOutcome(
        "success", 0, 12.5, pipeline_id="abc", reason="pipeline finished", trained=True,
        registered_version="3", promoted=True, awaiting_approval=False, log=str(runner.log_path),
    )  # fmt: skip


def test_a_locked_run_is_read_whole(runner: PipelineRunner) -> None:
    assert runner.outcome(3, 0.25, started_at=NOW) == RunOutcome(
        "locked", 3, 0.25, reason="another pipeline run holds the lock", log=str(runner.log_path)
    )


def test_no_state_file_or_a_broken_one_is_a_run_that_left_nothing(runner: PipelineRunner) -> None:
    expected = RunOutcome("failed", 2, 1.0, reason="exit code 2", log=str(runner.log_path))
    assert runner.outcome(2, 1.0, started_at=NOW) == expected
    runner.state_path.write_text('{"pipeline_id": "abc", ')  # torn
    assert runner.outcome(2, 1.0, started_at=NOW) == expected
    write_state(runner, **{k: v for k, v in STATE.items() if k != "started_at"})  # not this run's
    assert runner.outcome(2, 1.0, started_at=NOW) == expected


def test_the_state_file_counts_when_written_up_to_a_second_before_the_run(runner: PipelineRunner) -> None:
    write_state(runner, **{**STATE, "started_at": NOW - 1})
    assert runner.outcome(0, 1.0, started_at=NOW).pipeline_id == "abc"
    write_state(runner, **{**STATE, "started_at": NOW - 1.5})
    stale = runner.outcome(0, 1.0, started_at=NOW)
    assert stale.pipeline_id is None and not stale.trained and stale.status == "success"
