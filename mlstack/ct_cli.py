"""CLI commands of the continuous-training loop: the trigger endpoint, scheduled retrains, the simulator."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mlstack.contract import TRIGGER_DRIFT, TRIGGER_SCHEDULE, TRIGGERS, WEBHOOK_TOKEN_ENV

if TYPE_CHECKING:
    from mlstack.config import Config

trigger_app = typer.Typer(no_args_is_help=True, help="The local Alertmanager webhook receiver.")
ct_app = typer.Typer(no_args_is_help=True, help="Continuous training.")
simulate_app = typer.Typer(help="Send realistic (optionally drifted) traffic and feedback to the predictor.")

# The same options as the main CLI's (mlstack.cli imports this module, so they cannot be imported here).
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="Config file (default: mlstack.yaml).")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="Override any config key: key.sub=value.")]
# `mlstack ct check` exit code when the policy holds a retrain back.
HOLD_EXIT = 10


def _config(config_path: Path | None, sets: list[str] | None, **named: object) -> Config:
    from mlstack.cli import _build_config, _fail

    try:
        return _build_config(config_path, sets, **named)  # type: ignore[arg-type]
    except (ValueError, OSError) as exc:
        _fail(f"invalid configuration: {exc}", code=2)
        raise  # unreachable: _fail exits


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


# --------------------------------------------------------------------------- mlstack trigger serve


@trigger_app.command("serve")
def trigger_serve(
    config: ConfigOpt = None,
    set_: SetOpt = None,
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
    from mlstack.cli import _fail
    from mlstack.trigger_server import WEBHOOK_PATH, build_server

    token = os.environ.get(WEBHOOK_TOKEN_ENV, "").strip()
    if not token:
        _fail(f"set {WEBHOOK_TOKEN_ENV}: the bearer token Alertmanager sends to the trigger", code=2)
    if runtime != "local":
        raise typer.BadParameter(
            "the trigger runs local pipelines; compose uses Jenkins", param_hint="--runtime"
        )
    cfg = _config(config, set_)
    _logging()
    try:
        server = build_server(cfg, token, port=port, runtime=runtime)
    except OSError as exc:
        _fail(f"cannot listen on 127.0.0.1:{port or cfg.services.trigger_port}: {exc}")
        return
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


# --------------------------------------------------------------------------- mlstack ct ...


@ct_app.command("schedule")
def ct_schedule(
    config: ConfigOpt = None,
    set_: SetOpt = None,
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
    cfg = _config(config, set_, require_approval=require_approval)
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
def ct_check(
    trigger: Annotated[str, typer.Option(help=" | ".join(TRIGGERS))] = TRIGGER_DRIFT,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Would a retrain for TRIGGER run now? The pipeline's validate-data applies the same policy.

    Exit 0: it would run; exit 10: held back (cooldown or not enough new labelled data).
    """
    from mlstack.cli import _fail
    from mlstack.ct import retrain_policy
    from mlstack.data import load_base_dataset
    from mlstack.feedback import with_feedback

    if trigger not in TRIGGERS:
        raise typer.BadParameter(f"{trigger!r} is not one of {list(TRIGGERS)}", param_hint="--trigger")
    cfg = _config(config, set_)
    try:
        dataset = load_base_dataset(cfg.data)
        if cfg.data.use_feedback:
            dataset = with_feedback(dataset, cfg)
        new_rows = int(str(dataset.composition.get("new_rows", 0)))
        verdict = retrain_policy(cfg, trigger, new_rows)
    except Exception as exc:  # MLflow or the store is unreachable: say which
        _fail(f"cannot evaluate the policy: {exc.__class__.__name__}: {exc}")
        return
    typer.echo(f"{verdict.decision}: {verdict.reason} ({new_rows} new labelled rows)")
    if not verdict.allowed:
        raise typer.Exit(HOLD_EXIT)


@ct_app.command("audit")
def ct_audit(
    last: Annotated[int, typer.Option(help="How many of the newest entries.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines, as stored.")] = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Print the trigger's audit log (<state_dir>/ct/audit.jsonl), newest last."""
    from mlstack.ct import AuditLog

    audit = AuditLog.for_config(_config(config, set_))
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


# --------------------------------------------------------------------------- mlstack simulate


@simulate_app.callback(invoke_without_command=True)
def simulate(
    ctx: typer.Context,
    pattern: Annotated[str, typer.Option(help="none | sudden | gradual | recurring")] = "sudden",
    feature: Annotated[
        list[str] | None, typer.Option("--feature", help="Feature to drift (repeatable; default: all).")
    ] = None,
    magnitude: Annotated[
        float, typer.Option(help="Shift of drifted features, in standard deviations.")
    ] = 3.0,
    rate: Annotated[float, typer.Option(help="Requests per second.")] = 10.0,
    duration: Annotated[float, typer.Option(help="Seconds of traffic.")] = 60.0,
    onset: Annotated[float, typer.Option(help="Seconds before the drift begins.")] = 0.0,
    ramp: Annotated[
        float | None, typer.Option(help="gradual: seconds to full drift (default: the rest).")
    ] = None,
    period: Annotated[float, typer.Option(help="recurring: seconds per drifted / clean phase.")] = 30.0,
    batch_size: Annotated[int, typer.Option(help="Instances per /predict request.")] = 1,
    label_shift: Annotated[
        int, typer.Option(help="Drifted rows' true class = (class + shift) mod classes; 0 keeps it.")
    ] = 1,
    feedback_share: Annotated[float, typer.Option(help="Share of predictions that get a label.")] = 1.0,
    feedback_delay: Annotated[float, typer.Option(help="Seconds before a label is sent.")] = 2.0,
    noise: Annotated[float, typer.Option(help="Sampling noise, in standard deviations.")] = 0.1,
    max_requests: Annotated[int | None, typer.Option(help="Stop after this many requests.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    url: Annotated[
        str | None, typer.Option(help="Predictor URL (default: 127.0.0.1:services.api_port).")
    ] = None,
    allow_remote: Annotated[bool, typer.Option(help="Allow a non-loopback target.")] = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Send sampled wine traffic to the predictor, drifted by PATTERN, with delayed ground truth.

    Example: `mlstack simulate --pattern sudden --feature alcohol --feature proline --magnitude 3
    --rate 20 --duration 120` (or `make simulate`).
    """
    if ctx.invoked_subcommand is not None:
        return
    from mlstack.cli import _fail
    from mlstack.data import load_base_dataset
    from mlstack.simulate import DriftSpec, SimulationError, TrafficGenerator, check_target, run_simulation
    from mlstack.tokens import feedback_token

    cfg = _config(config, set_)
    target = url or f"http://127.0.0.1:{cfg.services.api_port}"
    try:
        check_target(target, allow_remote)
        spec = DriftSpec(
            pattern,  # type: ignore[arg-type]  # checked by DriftSpec
            tuple(feature or ()),
            magnitude,
            onset,
            ramp,
            period,
            label_shift,
        )
        generator = TrafficGenerator(load_base_dataset(cfg.data), spec, noise=noise, seed=seed)
        typer.echo(
            f"simulating {pattern} drift of {', '.join(generator.drifted_features)} by {magnitude:g} std "
            f"at {rate:g} req/s x {batch_size} for {duration:g}s -> {target}"
        )
        if warning := generator.plausibility_warning():
            typer.secho(f"note: {warning}", fg=typer.colors.YELLOW)
        report = run_simulation(
            target,
            generator,
            rate=rate,
            duration_s=duration,
            batch_size=batch_size,
            feedback_share=feedback_share,
            feedback_delay_s=feedback_delay,
            max_requests=max_requests,
            progress=typer.echo,
            feedback_token=feedback_token(cfg),
        )
    except SimulationError as exc:
        _fail(str(exc), code=2)
        return
    if report.stopped_early:
        typer.echo(f"stopped early: {report.stopped_early}")
    if report.feedback_error:
        typer.secho(f"{report.feedback_failed} labels refused; last: {report.feedback_error}", fg="yellow")
