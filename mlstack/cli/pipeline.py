"""`mlstack run` and `mlstack stage`: the pipeline, whole or stage by stage (the Jenkinsfile's calls)."""

from __future__ import annotations

import shlex
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import typer

from mlstack.cli.options import (
    ConfigSource,
    RegistryTarget,
    RunSettings,
    TrainingOverrides,
    build_config,
    fail,
    with_options,
)
from mlstack.config import REPO_ROOT, Config
from mlstack.contract import EXIT_LOCKED, STAGES, STATE_PIPELINE_LOG, Stage

if TYPE_CHECKING:
    from mlstack.console import StageReporter
    from mlstack.deployment import Runtime
    from mlstack.pipeline import Pipeline


def make_runtime(name: str, config: Config) -> Runtime:
    """The runtime the platform stages act on (`--runtime`)."""
    if name == "compose":
        from mlstack.runtime.compose import ComposeRuntime

        return ComposeRuntime(config)
    if name == "k8s":
        from mlstack.runtime.k8s import K8sRuntime

        return K8sRuntime(config)
    from mlstack.runtime.local import LocalRuntime

    return LocalRuntime(config)


def _print_plan(ordered: Sequence[Stage], settings: RunSettings, config: Config) -> None:
    typer.echo(f"dry run: stages {' -> '.join(ordered)}")
    if settings.runtime == "k8s":
        _print_kubectl_plan(ordered, config)
    typer.echo(
        f"  runtime={settings.runtime} trigger={settings.trigger} force={settings.force} "
        f"skip_training={settings.skip_training} rollback_to={settings.rollback_version} "
        f"approve={settings.approve}"
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


def _print_kubectl_plan(ordered: Sequence[Stage], config: Config) -> None:
    """The exact kubectl commands each stage would run (the k8s runtime's contract, tested)."""
    from mlstack.deployment import RuntimeActionError
    from mlstack.runtime.k8s import K8sRuntime

    runtime = K8sRuntime(config)
    typer.echo(
        f"  k8s: overlay={runtime.overlay} namespace={runtime.namespace} (commands run from {REPO_ROOT})"
    )
    try:
        for stage in ordered:
            for command in runtime.plan(stage, config):
                typer.echo(f"  {stage}: {shlex.join(command)}")
    except RuntimeActionError as exc:
        fail(str(exc))


def run_pipeline(
    stage_names: list[str],
    *,
    whole_run: bool,
    source: ConfigSource,
    target: RegistryTarget,
    training: TrainingOverrides,
    settings: RunSettings,
) -> None:
    """Check the arguments, then run the stages in pipeline order (or print the plan)."""
    settings.check()
    unknown = [s for s in stage_names if s not in STAGES]
    if unknown:
        raise typer.BadParameter(f"unknown stage(s) {unknown}; stages: {', '.join(STAGES)}")
    config = build_config(source, target, training)
    ordered = [s for s in STAGES if s in stage_names]
    if settings.dry_run:
        _print_plan(ordered, settings, config)
        return
    from mlstack.console import StageReporter
    from mlstack.pipeline import Pipeline, PipelineError, PipelineLocked, pipeline_lock

    started = time.monotonic()
    reporter = StageReporter(config.state_dir / STATE_PIPELINE_LOG, verbose=settings.verbose)
    pipeline = Pipeline(config, settings.pipeline_options(), make_runtime(settings.runtime, config))
    with reporter.session(fresh=whole_run):
        try:
            with pipeline_lock(config.state_dir):
                if whole_run:
                    pipeline.new_run()
                _print_header(pipeline, ordered, settings, reporter)
                try:
                    pipeline.run_stages(ordered, reporter)
                except PipelineError as exc:
                    if whole_run:
                        with reporter.quietly():
                            pipeline.record_pipeline_run("failed", str(exc))
                    print_summary(pipeline, config, time.monotonic() - started, reporter)
                    note = " (champion rolled back)" if pipeline.state.rolled_back else ""
                    fail(f"{exc}{note}")
        except PipelineLocked as exc:
            fail(str(exc), code=EXIT_LOCKED)
        if whole_run:
            with reporter.quietly():
                pipeline.record_pipeline_run("skipped" if pipeline.state.skipped else "success")
        print_summary(pipeline, config, time.monotonic() - started, reporter)


def _print_header(
    pipeline: Pipeline, ordered: Sequence[Stage], settings: RunSettings, reporter: StageReporter
) -> None:
    state = pipeline.state
    where = "" if settings.verbose else f"; library output: {reporter.log_path} (--verbose shows it here)"
    typer.echo(
        f"pipeline {state.pipeline_id}: {len(ordered)} stage(s), trigger {state.trigger}, "
        f"runtime {settings.runtime}{where}"
    )


def print_summary(
    pipeline: Pipeline, config: Config, seconds: float, reporter: StageReporter | None = None
) -> None:
    """The end-of-run table: stages, candidates, the gate, the champion and where the services are."""
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
        verdict = "promote" if state.gate.promote else "keep champion"
        typer.echo(f"\ngate: {verdict}: {state.gate.reason}")
    if state.skipped:
        typer.echo(f"\nskipped: {state.skipped}")
    try:
        champ = registry.champion_version(registry.make_client(config), config)
        typer.echo(f"champion: {config.project.registered_model} v{champ.version if champ else '-'}")
    except Exception as exc:
        typer.echo(f"champion: unknown ({exc.__class__.__name__})")
    if pipeline.runtime.name == "k8s":
        # The cluster's services are not on this machine: say how to reach them, open no tunnels.
        from mlstack.runtime.k8s import K8sRuntime

        assert isinstance(pipeline.runtime, K8sRuntime)
        typer.echo("\n" + "\n".join(f"  {n:<13} {c}" for n, c in pipeline.runtime.access(config).items()))
        typer.echo("=" * 78)
        return
    try:
        urls = pipeline.runtime.service_urls(config)
        typer.echo("\n" + "\n".join(f"  {name:<13} {url}" for name, url in urls.items()))
        if "api" in urls:
            typer.echo(f"  {'form':<13} {urls['api']}/   API docs: {urls['api']}/docs")
    except Exception as exc:
        typer.echo(f"(service URLs unavailable: {exc})")
    if reporter is not None and not reporter.verbose:
        typer.echo(f"\nlibrary output and the full log: {reporter.log_path}")
    typer.echo("=" * 78)


@with_options
def run(
    source: ConfigSource,
    target: RegistryTarget,
    training: TrainingOverrides,
    settings: RunSettings,
) -> None:
    """Run every stage in order."""
    run_pipeline(
        list(STAGES), whole_run=True, source=source, target=target, training=training, settings=settings
    )


@with_options
def stage(
    names: Annotated[list[str], typer.Argument(help="Stage name(s), run in pipeline order.")],
    source: ConfigSource,
    target: RegistryTarget,
    training: TrainingOverrides,
    settings: RunSettings,
) -> None:
    """Run the named stage(s) of the pipeline."""
    run_pipeline(names, whole_run=False, source=source, target=target, training=training, settings=settings)


def register(app: typer.Typer) -> None:
    """Add `run` and `stage` to the root command."""
    app.command()(run)
    app.command()(stage)
