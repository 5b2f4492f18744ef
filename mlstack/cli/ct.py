"""`mlstack trigger serve` and `mlstack ct ...`: the continuous-training loop's commands."""

from __future__ import annotations

import json
import os
from typing import Annotated

import typer

from mlstack.cli.options import ConfigSource, build_config, check_choice, fail, with_options
from mlstack.contract import (
    EXIT_BAD_INPUT,
    EXIT_HELD_BACK,
    LOOPBACK,
    TRIGGER_DRIFT,
    TRIGGER_SCHEDULE,
    TRIGGERS,
    WEBHOOK_TOKEN_ENV,
)
from mlstack.logs import configure_logging

trigger_app = typer.Typer(no_args_is_help=True, help="The local Alertmanager webhook receiver.")
ct_app = typer.Typer(no_args_is_help=True, help="Continuous training.")


@trigger_app.command("serve")
@with_options
def trigger_serve(
    source: ConfigSource,
    port: Annotated[
        int | None, typer.Option(help="Port on 127.0.0.1 (default: services.trigger_port).")
    ] = None,
    runtime: Annotated[str, typer.Option(help="Runtime of the retrains it starts.")] = "local",
) -> None:
    """Receive Alertmanager's CT webhook on 127.0.0.1 and run retrains (single flight, cooldown, audit).

    Needs MLSTACK_WEBHOOK_TOKEN: the bearer token Alertmanager sends (rendered by `mlstack render
    monitoring`). Decisions go to <state_dir>/ct/audit.jsonl, pipeline output to
    <state_dir>/logs/ct-pipeline.log.
    """
    from mlstack.trigger_server import WEBHOOK_PATH, build_server

    token = os.environ.get(WEBHOOK_TOKEN_ENV, "").strip()
    if not token:
        fail(
            f"set {WEBHOOK_TOKEN_ENV}: the bearer token Alertmanager sends to the trigger",
            code=EXIT_BAD_INPUT,
        )
    if runtime != "local":
        raise typer.BadParameter(
            "the trigger runs local pipelines; compose uses Jenkins", param_hint="--runtime"
        )
    cfg = build_config(source)
    configure_logging()
    try:
        server = build_server(cfg, token, port=port, runtime=runtime)
    except OSError as exc:
        fail(f"cannot listen on {LOOPBACK}:{port or cfg.services.trigger_port}: {exc}")
    typer.echo(
        f"trigger: POST {server.url}{WEBHOOK_PATH} (cooldown {cfg.ct.cooldown_s:g}s, "
        f"approval {'required' if cfg.gate.require_approval else 'not required'}); "
        f"audit {server.audit.path}"
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@ct_app.command("schedule")
@with_options
def ct_schedule(
    source: ConfigSource,
    runtime: Annotated[str, typer.Option(help="local (compose schedules retrains in Jenkins).")] = "local",
    require_approval: Annotated[
        bool | None, typer.Option(help="Quarantine: the new version waits for `mlstack approve`.")
    ] = None,
) -> None:
    """A scheduled retrain: the whole pipeline with trigger=schedule, audited like an alert.

    Cron (daily at 03:00, as Jenkins' parameterizedCron does in compose):

        0 3 * * * cd /path/to/repo && .venv/bin/mlstack ct schedule >> .mlops/logs/ct-schedule.log 2>&1
    """
    from mlstack.ct import AuditLog, Decision, PipelineRunner

    if runtime != "local":
        raise typer.BadParameter(
            "compose schedules retrains in Jenkins (parameterizedCron)", param_hint="--runtime"
        )
    cfg = build_config(source, require_approval=require_approval)
    audit = AuditLog.for_config(cfg)
    audit.record(
        "ran", "scheduled retrain started", phase="started", trigger=TRIGGER_SCHEDULE, source=TRIGGER_SCHEDULE
    )
    runner = PipelineRunner(cfg, runtime)
    typer.echo(
        f"scheduled retrain: {' '.join(runner.command(TRIGGER_SCHEDULE))}\n  output: {runner.log_path}"
    )
    outcome = runner(TRIGGER_SCHEDULE)
    decision: Decision = "ran" if outcome.status in ("success", "failed") else "skipped"
    audit.record(
        decision,
        outcome.reason,
        phase="finished",
        trigger=TRIGGER_SCHEDULE,
        source=TRIGGER_SCHEDULE,
        outcome=outcome.status,
        exit_code=outcome.exit_code,
        pipeline_id=outcome.pipeline_id,
        registered_version=outcome.registered_version,
        promoted=outcome.promoted,
        awaiting_approval=outcome.awaiting_approval,
    )
    typer.echo(
        f"{outcome.status}: {outcome.reason} (pipeline {outcome.pipeline_id or '-'}, "
        f"{outcome.duration_s:.0f}s, version {outcome.registered_version or '-'}, "
        f"promoted {outcome.promoted}, awaiting approval {outcome.awaiting_approval})"
    )
    if outcome.exit_code:
        raise typer.Exit(outcome.exit_code)


@ct_app.command("check")
@with_options
def ct_check(
    source: ConfigSource,
    trigger: Annotated[str, typer.Option(help=" | ".join(TRIGGERS))] = TRIGGER_DRIFT,
) -> None:
    """Would a retrain for TRIGGER run now? The pipeline's validate-data applies the same policy.

    Exit 0: it would run; exit 10: held back (cooldown or not enough new labelled data).
    """
    from mlstack.ct import retrain_policy
    from mlstack.data import load_base_dataset
    from mlstack.feedback import with_feedback

    check_choice(trigger, TRIGGERS, "--trigger")
    cfg = build_config(source)
    try:
        dataset = load_base_dataset(cfg.data)
        if cfg.data.use_feedback:
            dataset = with_feedback(dataset, cfg)
        new_rows = int(str(dataset.composition.get("new_rows", 0)))
        verdict = retrain_policy(cfg, trigger, new_rows)
    except Exception as exc:  # MLflow or the store is unreachable: say which
        fail(f"cannot evaluate the policy: {exc.__class__.__name__}: {exc}")
    typer.echo(f"{verdict.decision}: {verdict.reason} ({new_rows} new labelled rows)")
    if not verdict.allowed:
        raise typer.Exit(EXIT_HELD_BACK)


@ct_app.command("audit")
@with_options
def ct_audit(
    source: ConfigSource,
    last: Annotated[int, typer.Option(help="How many of the newest entries.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines, as stored.")] = False,
) -> None:
    """Print the trigger's audit log (<state_dir>/ct/audit.jsonl), newest last."""
    from mlstack.ct import AuditLog

    audit = AuditLog.for_config(build_config(source))
    entries = audit.entries()[-max(last, 0) :] if last else []
    if not entries:
        typer.echo(f"no decisions recorded in {audit.path}")
    for entry in entries:
        if as_json:
            typer.echo(json.dumps(entry))
        else:
            typer.echo(
                f"{entry['at']}  {entry['decision']:<12} {entry.get('trigger', '-'):<9} "
                f"{entry.get('source', entry.get('phase', '')):<13} {entry['reason']}"
            )
