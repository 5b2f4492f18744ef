"""The CT policy: cooldown and new-data rules, the audit log, single flight and coalescing.

The controller tests drive `TriggerController` with a stand-in pipeline runner that blocks until the
test releases it (a real pipeline takes a minute; its behaviour here is only "running" or "done").
The real pipeline subprocess runs in tests/e2e/test_ct_scenario.py; the MLflow lookup of the last
retrain runs against a real server in tests/integration/ct/test_ct_cooldown.py.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mlstack.config import Config, load_config
from mlstack.ct import (
    AuditLog,
    PipelineRunner,
    RunOutcome,
    TriggerController,
    evaluate_policy,
)
from tests.support.ct import GatedRunner
from tests.support.net import free_port

NOW = 1_000_000.0


def _config(tmp_path: Path, **overrides: Any) -> Config:
    base = {
        "services.state_dir": str(tmp_path / "state"),
        "ct.cooldown_s": 60,
        "data.min_new_labelled_rows": 50,
    }
    return load_config(environ={}, overrides={**base, **overrides})


# --------------------------------------------------------------------------- the pure policy


def test_cooldown_holds_alert_triggers_only(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    held = evaluate_policy(cfg, "drift", now=NOW, last_retrain_at=NOW - 20, new_rows=500)
    assert not held.allowed and held.decision == "cooled-down"
    assert held.retry_after_s == pytest.approx(40)
    assert "ct.cooldown_s = 60" in held.reason and "retry in 40s" in held.reason
    assert not evaluate_policy(cfg, "accuracy", now=NOW, last_retrain_at=NOW - 59.9).allowed
    # Expired, never retrained, or not an alert trigger: the cooldown does not apply.
    assert evaluate_policy(cfg, "drift", now=NOW, last_retrain_at=NOW - 60).allowed
    assert evaluate_policy(cfg, "drift", now=NOW, last_retrain_at=None).allowed
    for trigger in ("manual", "push", "schedule"):
        assert evaluate_policy(cfg, trigger, now=NOW, last_retrain_at=NOW - 1).allowed
    assert evaluate_policy(
        _config(tmp_path, **{"ct.cooldown_s": 0}), "drift", now=NOW, last_retrain_at=NOW
    ).allowed


def test_new_data_rule_follows_the_config(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    short = evaluate_policy(cfg, "drift", now=NOW, last_retrain_at=None, new_rows=49)
    assert not short.allowed and short.decision == "skipped"
    assert (
        short.reason
        == "insufficient new data: 49 new labelled rows < 50 required for a retrain triggered by drift"
    )
    assert evaluate_policy(cfg, "accuracy", now=NOW, last_retrain_at=None, new_rows=50).allowed
    assert evaluate_policy(cfg, "schedule", now=NOW, last_retrain_at=None, new_rows=0).allowed
    # Unknown count (the trigger decides before the pipeline counts): only the cooldown applies.
    assert evaluate_policy(cfg, "drift", now=NOW, last_retrain_at=None, new_rows=None).allowed
    lenient = _config(tmp_path, **{"ct.triggers_requiring_new_data": ["accuracy"]})
    assert evaluate_policy(lenient, "drift", now=NOW, last_retrain_at=None, new_rows=0).allowed
    # Cooldown is checked first: it is what the audit reports while both hold.
    both = evaluate_policy(cfg, "drift", now=NOW, last_retrain_at=NOW - 1, new_rows=0)
    assert both.decision == "cooled-down"


def test_audit_log_is_json_lines_and_refuses_unknown_decisions(tmp_path: Path) -> None:
    audit = AuditLog(tmp_path / "ct" / "audit.jsonl")
    audit.record("ran", "pipeline started", trigger="drift", alerts=["DataDriftDetected"])
    audit.record("rejected", "wrong bearer token", status=401)
    with pytest.raises(ValueError, match="unknown decision"):
        audit.record("maybe", "x")  # type: ignore[arg-type]
    with audit.path.open("a") as handle:
        handle.write('{"torn": ')  # a crash mid-write leaves a partial line; readers skip it
    entries = audit.entries()
    assert [e["decision"] for e in entries] == ["ran", "rejected"]
    assert entries[0]["alerts"] == ["DataDriftDetected"] and entries[0]["at"].endswith("+00:00")


# --------------------------------------------------------------------------- single flight


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def _controller(
    tmp_path: Path, runner: GatedRunner, last: float | None = None, **overrides: Any
) -> tuple[TriggerController, AuditLog, Clock]:
    cfg = _config(tmp_path, **overrides)
    audit = AuditLog.for_config(cfg)
    clock = Clock()
    controller = TriggerController(cfg, audit, runner, last_retrain=lambda: last, clock=clock)
    return controller, audit, clock


def test_one_run_at_a_time_and_a_burst_coalesces_into_one_follow_up(tmp_path: Path) -> None:
    runner = GatedRunner()
    controller, audit, clock = _controller(tmp_path, runner)

    first = controller.submit("drift")
    assert (first.decision, first.status) == ("ran", 202)
    assert runner.started.acquire(timeout=10)
    burst = [controller.submit(t) for t in ("drift", "drift", "accuracy", "drift")]
    assert [s.decision for s in burst] == ["coalesced"] * 4
    assert "queued as its one follow-up" in burst[0].reason
    assert all("merged" in s.reason for s in burst[1:])
    assert controller.pending == "accuracy"  # labels beat distributions

    # The first run trained (outcome.trained), so the follow-up meets the cooldown and is dropped.
    clock.now += 5
    runner.release()
    assert controller.wait_idle(10)
    assert runner.calls == ["drift"]
    decisions = [(e["decision"], e.get("phase"), e.get("source")) for e in audit.entries()]
    assert decisions == [
        ("ran", "started", "alertmanager"),
        *[("coalesced", None, "alertmanager")] * 4,
        ("ran", "finished", None),
        ("cooled-down", None, "follow-up"),
    ]
    follow_up = audit.entries()[-1]
    assert follow_up["trigger"] == "accuracy" and len(follow_up["coalesced_from"]) == 4
    # A fresh alert is cooled down for the full cooldown after the run finished (clock: +5 s).
    late = controller.submit("drift")
    assert (late.decision, late.status) == ("cooled-down", 200) and late.extra["retry_after_s"] == 60


def test_follow_up_runs_when_the_first_run_did_not_train(tmp_path: Path) -> None:
    """A run skipped for lack of new data starts no cooldown: the queued alert gets its retrain."""
    skipped = RunOutcome("skipped", 0, 1.0, reason="insufficient new data: 3 new labelled rows < 50")
    runner = GatedRunner(skipped)
    controller, audit, _ = _controller(tmp_path, runner)
    controller.submit("drift")
    assert runner.started.acquire(timeout=10)
    assert controller.submit("drift").decision == "coalesced"
    runner.release()
    assert runner.started.acquire(timeout=10)  # the follow-up started
    runner.release()
    assert controller.wait_idle(10)
    assert runner.calls == ["drift", "drift"]
    finished = [e for e in audit.entries() if e.get("phase") == "finished"]
    assert [e["decision"] for e in finished] == ["skipped", "skipped"]
    assert finished[0]["reason"].startswith("insufficient new data")
    assert [e["source"] for e in audit.entries() if e.get("phase") == "started"] == [
        "alertmanager",
        "follow-up",
    ]


def test_cooldown_from_mlflow_and_a_failing_lookup(tmp_path: Path) -> None:
    runner = GatedRunner()
    controller, audit, _ = _controller(tmp_path, runner, last=NOW - 10)
    held = controller.submit("drift")
    assert held.decision == "cooled-down" and runner.calls == []

    def broken() -> float | None:
        raise ConnectionError("mlflow down")

    cfg = _config(tmp_path)
    controller = TriggerController(cfg, audit, runner, last_retrain=broken, clock=Clock())
    started = controller.submit("drift")  # no record of a retrain: allowed, and the warning is audited
    assert started.decision == "ran" and "MLflow lookup of the last retrain failed" in started.reason
    runner.release()
    assert controller.wait_idle(10)


def test_concurrent_requests_start_exactly_one_run(tmp_path: Path) -> None:
    runner = GatedRunner()
    controller, _, _ = _controller(tmp_path, runner)
    results: list[str] = []
    barrier = threading.Barrier(8)

    def hit() -> None:
        barrier.wait(timeout=10)
        results.append(controller.submit("drift").decision)

    threads = [threading.Thread(target=hit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert sorted(results) == ["coalesced"] * 7 + ["ran"]
    runner.release()
    assert controller.wait_idle(10)
    assert runner.calls == ["drift"]


def test_runner_outcome_is_read_from_the_pipeline_state(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    config_file = tmp_path / "config.yaml"
    runner = PipelineRunner(cfg, config_file=config_file)
    assert runner.command("drift")[2:] == [
        "mlstack.cli", "run", "--runtime", "local", "--trigger", "drift", "--config", str(config_file),
    ]  # fmt: skip
    runner.state_path.parent.mkdir(parents=True)
    state = {
        "pipeline_id": "abc",
        "started_at": NOW,
        "candidates": [{"name": "rf"}],
        "registered_version": "3",
        "promoted": False,
        "awaiting_approval": True,
        "skipped": None,
        "results": {"train": "ok"},
    }
    runner.state_path.write_text(json.dumps(state))
    done = runner.outcome(0, 12.0, started_at=NOW)
    assert (done.status, done.pipeline_id, done.registered_version, done.awaiting_approval) == (
        "success", "abc", "3", True,
    )  # fmt: skip
    assert done.trained
    runner.state_path.write_text(json.dumps({**state, "skipped": "cooldown: ...", "candidates": []}))
    skipped = runner.outcome(0, 1.0, started_at=NOW)
    assert skipped.status == "skipped" and skipped.reason == "cooldown: ..." and not skipped.trained
    failed_state = {**state, "results": {"train": "FAILED: boom"}}
    runner.state_path.write_text(json.dumps(failed_state))
    failed = runner.outcome(1, 1.0, started_at=NOW)
    assert failed.status == "failed" and failed.reason == "train: FAILED: boom"
    assert runner.outcome(3, 1.0, started_at=NOW).status == "locked"
    # A run that died before it started leaves an older state behind: it is not attributed.
    stale = runner.outcome(2, 1.0, started_at=NOW + 100)
    assert stale.status == "failed" and stale.pipeline_id is None and stale.reason == "exit code 2"


# --------------------------------------------------------------------------- the CLI


def test_trigger_serve_needs_the_token(tmp_path: Path) -> None:
    from mlstack.cli import app

    env = {"MLSTACK_WEBHOOK_TOKEN": "", "MLSTACK__SERVICES__STATE_DIR": str(tmp_path / "state")}
    result = CliRunner().invoke(app, ["trigger", "serve"], env=env)
    assert result.exit_code == 2 and "set MLSTACK_WEBHOOK_TOKEN" in result.output


def test_scheduled_retrain_runs_the_real_pipeline_subprocess_and_audits_it(tmp_path: Path) -> None:
    """`mlstack ct schedule` starts `mlstack run --trigger schedule`; a fault in its first stage
    (MLSTACK_FAIL_STAGE=build, so no service is started) comes back as the exit code and the audit."""
    from mlstack.cli import app

    state = tmp_path / "state"
    env = {
        "MLSTACK__SERVICES__STATE_DIR": str(state),
        "MLSTACK_FAIL_STAGE": "build",
        # Nothing listens there (never a developer's MLflow on 5000); fail fast when recording the run.
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    }
    result = CliRunner().invoke(app, ["ct", "schedule", "--require-approval"], env=env)
    assert result.exit_code == 1, result.output
    assert "--trigger schedule" in result.output and "failed: build: FAILED: fault injected" in result.output
    audit = AuditLog(state / "ct" / "audit.jsonl").entries()
    assert [(e["decision"], e["phase"], e["trigger"]) for e in audit] == [
        ("ran", "started", "schedule"),
        ("ran", "finished", "schedule"),
    ]
    assert audit[1]["outcome"] == "failed" and audit[1]["exit_code"] == 1
    written = (state / "ct" / "config.yaml").read_text()
    assert "require_approval: true" in written  # the flag reached the pipeline's config
    assert "stage 'build' failed: fault injected" in (state / "logs" / "ct-pipeline.log").read_text()
