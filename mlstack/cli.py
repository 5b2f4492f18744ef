"""The `mlstack` command line: the pipeline, its stages, the registry and the local services."""

from __future__ import annotations

import inspect
import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from mlstack.config import REPO_ROOT, Config, load_config, parse_set_options, select_candidates
from mlstack.contract import DEFAULT_TRIGGER, STAGES, TRIGGERS
from mlstack.ct_cli import ct_app, simulate_app, trigger_app
from mlstack.monitoring.endpoints import TARGETS as MONITORING_TARGETS

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
registry_app = typer.Typer(no_args_is_help=True, help="The alias timeline and rollback.")
services_app = typer.Typer(no_args_is_help=True, help="Local runtime services.")
render_app = typer.Typer(no_args_is_help=True, help="Render configuration from mlstack.yaml.")
app.add_typer(registry_app, name="registry")
app.add_typer(services_app, name="services")
app.add_typer(render_app, name="render")
platform_app = typer.Typer(no_args_is_help=True, help="The compose platform.")
app.add_typer(platform_app, name="platform")
app.add_typer(trigger_app, name="trigger")
app.add_typer(ct_app, name="ct")
app.add_typer(simulate_app, name="simulate")

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="Config file (default: mlstack.yaml).")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="Override any config key: key.sub=value.")]
RuntimeOpt = Annotated[str, typer.Option("--runtime", help="local | compose")]


def _build_config(
    config_path: Path | None,
    sets: list[str] | None,
    *,
    tracking_uri: str | None = None,
    experiment: str | None = None,
    model_name: str | None = None,
    models: str | None = None,
    primary_metric: str | None = None,
    floor: float | None = None,
    min_improvement: float | None = None,
    require_approval: bool | None = None,
) -> Config:
    """File, then env, then `--set`, then the named flags (Jenkins parameters)."""
    overrides: dict[str, Any] = parse_set_options(sets or [])
    named = {
        "mlflow.tracking_uri": tracking_uri,
        "project.experiment": experiment,
        "project.registered_model": model_name,
        "training.primary_metric": primary_metric,
        "gate.floor": floor,
        "gate.min_improvement": min_improvement,
        "gate.require_approval": require_approval,
    }
    overrides.update({k: v for k, v in named.items() if v not in (None, "")})
    config = load_config(config_path, overrides)
    names = [n.strip() for n in (models or "").split(",") if n.strip()]
    return select_candidates(config, names)


def _runtime(name: str, config: Config) -> Any:
    if name == "local":
        from mlstack.runtime.local import LocalRuntime

        return LocalRuntime(config)
    if name == "compose":
        from mlstack.runtime.compose import ComposeRuntime

        return ComposeRuntime(config)
    raise typer.BadParameter(f"unknown runtime {name!r}: local | compose", param_hint="--runtime")


def _fail(message: str, code: int = 1) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _pipeline_command(
    stage_names: list[str],
    *,
    run_all: bool,
    config_path: Path | None,
    sets: list[str] | None,
    runtime: str,
    tracking_uri: str | None,
    experiment: str | None,
    model_name: str | None,
    models: str | None,
    primary_metric: str | None,
    floor: float | None,
    min_improvement: float | None,
    force: bool,
    trigger: str,
    require_approval: bool | None,
    build_id: str | None,
    skip_training: bool,
    rollback_to: str | None,
    approve: bool,
    dry_run: bool,
) -> None:
    if trigger not in TRIGGERS:
        raise typer.BadParameter(f"{trigger!r} is not one of {list(TRIGGERS)}", param_hint="--trigger")
    unknown = [s for s in stage_names if s not in STAGES]
    if unknown:
        raise typer.BadParameter(f"unknown stage(s) {unknown}; stages: {', '.join(STAGES)}")
    try:
        config = _build_config(
            config_path,
            sets,
            tracking_uri=tracking_uri,
            experiment=experiment,
            model_name=model_name,
            models=models,
            primary_metric=primary_metric,
            floor=floor,
            min_improvement=min_improvement,
            require_approval=require_approval,
        )
    except (ValueError, OSError) as exc:
        _fail(f"invalid configuration: {exc}", code=2)
        return
    if runtime not in {"local", "compose"}:
        raise typer.BadParameter(f"unknown runtime {runtime!r}: local | compose", param_hint="--runtime")
    rollback = rollback_to.strip() if rollback_to and rollback_to.strip() else None
    ordered = [s for s in STAGES if s in stage_names]
    if dry_run:
        typer.echo(f"dry run: stages {' -> '.join(ordered)}")
        typer.echo(
            f"  runtime={runtime} trigger={trigger} force={force} skip_training={skip_training} "
            f"rollback_to={rollback} approve={approve}"
        )
        typer.echo(
            f"  tracking_uri={config.mlflow.tracking_uri} model={config.project.registered_model} "
            f"experiment={config.project.experiment}"
        )
        typer.echo(
            f"  candidates={[c.name for c in config.training.candidates]} "
            f"metric={config.training.primary_metric} floor={config.gate.floor} "
            f"min_improvement={config.gate.min_improvement} approval={config.gate.require_approval}"
        )
        return
    from mlstack.pipeline import Options, Pipeline, PipelineError, PipelineLocked, pipeline_lock

    options = Options(runtime, force, trigger, build_id or None, skip_training, rollback, approve)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    started = time.monotonic()
    pipeline = Pipeline(config, options, _runtime(runtime, config))
    try:
        with pipeline_lock(config.state_dir):
            if run_all:
                pipeline.new_run()
            try:
                pipeline.run_stages(ordered)
            except PipelineError as exc:
                if run_all:
                    pipeline.record_pipeline_run("failed", str(exc))
                _print_summary(pipeline, config, time.monotonic() - started)
                note = " (champion rolled back)" if pipeline.state.rolled_back else ""
                _fail(f"{exc}{note}")
    except PipelineLocked as exc:
        _fail(str(exc), code=3)
    if run_all:
        status = "skipped" if pipeline.state.skipped else "success"
        pipeline.record_pipeline_run(status)
    _print_summary(pipeline, config, time.monotonic() - started)


def _print_summary(pipeline: Any, config: Config, seconds: float) -> None:
    from mlstack import registry
    from mlstack.pipeline import summary_frame

    state = pipeline.state
    typer.echo("\n" + "=" * 78)
    typer.echo(f"pipeline {state.pipeline_id}  trigger={state.trigger}  {seconds:.1f}s")
    for name, result in state.results.items():
        typer.echo(f"  {name:<14} {state.timings.get(name, 0):6.1f}s  {result}")
    if state.candidates:
        typer.echo("\ncandidates:")
        typer.echo(summary_frame(state, config.training.primary_metric).to_string(index=False))
    if state.gate:
        verdict = "promote" if state.gate["promote"] else "keep champion"
        typer.echo(f"\ngate: {verdict}: {state.gate['reason']}")
    if state.skipped:
        typer.echo(f"\nskipped: {state.skipped}")
    try:
        champ = registry.champion_version(registry.make_client(config), config)
        typer.echo(f"champion: {config.project.registered_model} v{champ.version if champ else '-'}")
    except Exception as exc:
        typer.echo(f"champion: unknown ({exc.__class__.__name__})")
    try:
        urls = pipeline.runtime.service_urls(config)
        typer.echo("\n" + "\n".join(f"  {name:<13} {url}" for name, url in urls.items()))
        if "api" in urls:
            typer.echo(f"  {'form':<13} {urls['api']}/   API docs: {urls['api']}/docs")
    except Exception as exc:
        typer.echo(f"(service URLs unavailable: {exc})")
    typer.echo("=" * 78)


def _option(annotation: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter("_", inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


# The options every pipeline command takes: one list, so `run`, `stage` and the Jenkins contract agree.
PIPELINE_OPTIONS: dict[str, inspect.Parameter] = {
    "config": _option(ConfigOpt, None),
    "set_": _option(SetOpt, None),
    "runtime": _option(RuntimeOpt, "local"),
    "tracking_uri": _option(Annotated[str | None, typer.Option(help="MLflow tracking URI.")], None),
    "experiment": _option(Annotated[str | None, typer.Option(help="Experiment name.")], None),
    "model_name": _option(Annotated[str | None, typer.Option(help="Registered model name.")], None),
    "models": _option(
        Annotated[str | None, typer.Option(help="Candidates to train, comma-separated (default: all).")], None
    ),
    "primary_metric": _option(Annotated[str | None, typer.Option(help="Primary metric.")], None),
    "floor": _option(Annotated[float | None, typer.Option(help="Gate floor.")], None),
    "min_improvement": _option(Annotated[float | None, typer.Option(help="Gate minimum improvement.")], None),
    "force": _option(Annotated[bool, typer.Option(help="Promote regardless of the gate (audited).")], False),
    "trigger": _option(Annotated[str, typer.Option(help=" | ".join(TRIGGERS))], DEFAULT_TRIGGER),
    "require_approval": _option(
        Annotated[bool | None, typer.Option(help="Quarantine: wait for approval.")], None
    ),
    "build_id": _option(Annotated[str | None, typer.Option(help="Pipeline id (Jenkins BUILD_TAG).")], None),
    "skip_training": _option(Annotated[bool, typer.Option(help="Redeploy only.")], False),
    "rollback_to": _option(
        Annotated[str | None, typer.Option(help="Roll the champion back to this version.")], None
    ),
    "approve": _option(Annotated[bool, typer.Option(help="Approval given (Jenkins input step).")], False),
    "dry_run": _option(
        Annotated[bool, typer.Option(help="Validate arguments and print the plan only.")], False
    ),
}


def with_pipeline_options(fn: Callable[..., None]) -> Callable[..., None]:
    """Give a command the pipeline options: its `**options` become PIPELINE_OPTIONS in its signature."""
    signature = inspect.signature(fn)
    kept = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    extra = [param.replace(name=name) for name, param in PIPELINE_OPTIONS.items()]
    fn.__signature__ = signature.replace(parameters=[*kept, *extra])  # type: ignore[attr-defined]
    return fn


def _run_pipeline(stage_names: list[str], run_all: bool, options: dict[str, Any]) -> None:
    options = dict(options)
    _pipeline_command(
        stage_names, run_all=run_all, config_path=options.pop("config"), sets=options.pop("set_"), **options
    )


@app.command()
@with_pipeline_options
def run(**options: Any) -> None:
    """Run every stage in order."""
    _run_pipeline(list(STAGES), True, options)


@app.command()
@with_pipeline_options
def stage(
    names: Annotated[list[str], typer.Argument(help="Stage name(s), run in pipeline order.")],
    **options: Any,
) -> None:
    """Run the named stage(s) of the pipeline."""
    _run_pipeline(names, False, options)


ModelNameOpt = Annotated[str | None, typer.Option(help="Registered model name.")]
TrackingOpt = Annotated[str | None, typer.Option(help="MLflow tracking URI.")]


def _registry_config(
    config: Path | None, sets: list[str] | None, tracking_uri: str | None, model_name: str | None
) -> Config:
    return _build_config(config, sets, tracking_uri=tracking_uri, model_name=model_name)


@registry_app.command("history")
def registry_history(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    tracking_uri: TrackingOpt = None,
    model_name: ModelNameOpt = None,
) -> None:
    """Print the production timeline: every alias move, oldest first."""
    from mlstack import registry

    cfg = _registry_config(config, set_, tracking_uri, model_name)
    moves = registry.history(registry.make_client(cfg), cfg.project.registered_model)
    if not moves:
        typer.echo(f"{cfg.project.registered_model}: no alias moves recorded")
        return
    typer.echo(f"{'when (UTC)':<20} {'alias':<11} {'from':>5} -> {'to':<5} {'by':<28} reason")
    for m in moves:
        when = datetime.fromtimestamp(m.at, UTC).strftime("%Y-%m-%d %H:%M:%S")
        typer.echo(
            f"{when:<20} {m.alias:<11} {m.from_version or '-':>5} -> {m.to_version or '-':<5} "
            f"{m.by:<28} {m.reason}"
        )


@registry_app.command("rollback")
def registry_rollback(
    to: Annotated[
        str | None, typer.Option("--to", help="Version to roll back to (default: previous).")
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    tracking_uri: TrackingOpt = None,
    model_name: ModelNameOpt = None,
    dry_run: Annotated[bool, typer.Option(help="Print what would happen only.")] = False,
) -> None:
    """Move the champion back (recorded in the history)."""
    from mlstack import registry

    cfg = _registry_config(config, set_, tracking_uri, model_name)
    if dry_run:
        typer.echo(
            f"dry run: roll {cfg.project.registered_model}@champion back to {to or 'the previous champion'}"
        )
        return
    try:
        move = registry.rollback(registry.make_client(cfg), cfg, to)
    except registry.RegistryError as exc:
        _fail(str(exc))
        return
    typer.echo(f"champion: v{move.from_version} -> v{move.to_version}")


@registry_app.command("show")
def registry_show(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    tracking_uri: TrackingOpt = None,
    model_name: ModelNameOpt = None,
) -> None:
    """Print the champion and challenger versions."""
    from mlstack import registry

    cfg = _registry_config(config, set_, tracking_uri, model_name)
    client = registry.make_client(cfg)
    for alias in (cfg.project.champion_alias, cfg.project.challenger_alias):
        version = registry.version_by_alias(client, cfg.project.registered_model, alias)
        typer.echo(f"{alias}: {('v' + version.version) if version else '-'}")


def _decide_quarantine(decision: str, version: str, cfg: Config) -> None:
    from mlstack import approval

    try:
        typer.echo(approval.approve(cfg, version) if decision == "approve" else approval.reject(cfg, version))
    except approval.ApprovalError as exc:
        _fail(str(exc))


@app.command()
def approve(
    version: Annotated[str, typer.Argument(help="The challenger version to approve.")],
    config: ConfigOpt = None,
    set_: SetOpt = None,
    tracking_uri: TrackingOpt = None,
    model_name: ModelNameOpt = None,
) -> None:
    """Approve a quarantined challenger: it becomes champion (recorded)."""
    _decide_quarantine("approve", version, _registry_config(config, set_, tracking_uri, model_name))


@app.command()
def reject(
    version: Annotated[str, typer.Argument(help="The challenger version to reject.")],
    config: ConfigOpt = None,
    set_: SetOpt = None,
    tracking_uri: TrackingOpt = None,
    model_name: ModelNameOpt = None,
) -> None:
    """Reject a quarantined challenger (recorded)."""
    _decide_quarantine("reject", version, _registry_config(config, set_, tracking_uri, model_name))


@services_app.command("stop")
def services_stop(config: ConfigOpt = None, set_: SetOpt = None) -> None:
    """Stop every local service started by the pipeline."""
    from mlstack.runtime.local import LocalRuntime

    cfg = _build_config(config, set_)
    LocalRuntime(cfg).stop(cfg)


@services_app.command("status")
def services_status(config: ConfigOpt = None, set_: SetOpt = None) -> None:
    """Show which local services run."""
    from mlstack.runtime.local import LocalRuntime

    cfg = _build_config(config, set_)
    procs = LocalRuntime(cfg).procs
    names = procs.names()
    if not names:
        typer.echo("no local services running")
    for name in names:
        typer.echo(f"{name:<13} pid {procs.pid(name) or '-'}  log {procs.log_file(name)}")


@services_app.command("start")
def services_start(config: ConfigOpt = None, set_: SetOpt = None) -> None:
    """Start (or reuse) every local service without running the pipeline."""
    from mlstack.runtime.local import LocalRuntime

    cfg = _build_config(config, set_)
    runtime = LocalRuntime(cfg)
    runtime.start_platform(cfg)
    runtime.deploy(cfg)
    for name, status in runtime.healthcheck(cfg).items():
        typer.echo(f"{name}: {status}")


@platform_app.command("check-env")
def platform_check_env(
    env_file: Annotated[Path, typer.Option(help="The compose .env file.")] = REPO_ROOT / ".env",
) -> None:
    """Refuse to go on when a required secret is missing from the environment and .env."""
    from mlstack.runtime.compose import REQUIRED_SECRETS, missing_secrets

    missing = missing_secrets(env_file)
    if missing:
        _fail(
            f"required secrets not set: {', '.join(missing)}. Copy .env.example to .env and fill them in "
            "(see docs/containers.md); there are no default passwords."
        )
    typer.echo(f"all {len(REQUIRED_SECRETS)} required secrets are set")


@render_app.command("monitoring")
def render_monitoring(
    target: Annotated[str, typer.Option(help=" | ".join(MONITORING_TARGETS))] = "compose",
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Output directory (default: the target's, e.g. the repo for compose).",
        ),
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Render Prometheus, Alertmanager and Grafana config (rules, tests, dashboards) from mlstack.yaml.

    $MLSTACK_WEBHOOK_URL overrides the CT webhook URL; $MLSTACK_WEBHOOK_TOKEN is the local target's token.
    """
    from mlstack.monitoring.render import render_monitoring as render

    if target not in MONITORING_TARGETS:
        raise typer.BadParameter(f"{target!r}: {' | '.join(MONITORING_TARGETS)}", param_hint="--target")
    rendered = render(_build_config(config, set_), target, out)
    for path in rendered.all:
        typer.echo(f"wrote {path}")


def main() -> None:
    """Console entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
