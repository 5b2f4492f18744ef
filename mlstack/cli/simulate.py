"""`mlstack simulate`: realistic, optionally drifted traffic and delayed labels for the predictor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import typer

from mlstack.cli.options import ConfigSource, build_config, fail, with_options
from mlstack.contract import EXIT_BAD_INPUT, LOOPBACK

app = typer.Typer(help="Send realistic (optionally drifted) traffic and feedback to the predictor.")


@dataclass(frozen=True)
class DriftOptions:
    """What drifts, how and when."""

    pattern: Annotated[str, typer.Option(help="none | sudden | gradual | recurring")] = "sudden"
    feature: Annotated[
        list[str] | None, typer.Option("--feature", help="Feature to drift (repeatable; default: all).")
    ] = None
    magnitude: Annotated[float, typer.Option(help="Shift of drifted features, in standard deviations.")] = 3.0
    onset: Annotated[float, typer.Option(help="Seconds before the drift begins.")] = 0.0
    ramp: Annotated[
        float | None, typer.Option(help="gradual: seconds to full drift (default: the rest).")
    ] = None
    period: Annotated[float, typer.Option(help="recurring: seconds per drifted / clean phase.")] = 30.0
    label_shift: Annotated[
        int, typer.Option(help="Drifted rows' true class = (class + shift) mod classes; 0 keeps it.")
    ] = 1
    noise: Annotated[float, typer.Option(help="Sampling noise, in standard deviations.")] = 0.1
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0


@dataclass(frozen=True)
class TrafficOptions:
    """How much traffic, where to, and how much of it gets labelled."""

    rate: Annotated[float, typer.Option(help="Requests per second.")] = 10.0
    duration: Annotated[float, typer.Option(help="Seconds of traffic.")] = 60.0
    batch_size: Annotated[int, typer.Option(help="Instances per /predict request.")] = 1
    feedback_share: Annotated[float, typer.Option(help="Share of predictions that get a label.")] = 1.0
    feedback_delay: Annotated[float, typer.Option(help="Seconds before a label is sent.")] = 2.0
    max_requests: Annotated[int | None, typer.Option(help="Stop after this many requests.")] = None
    url: Annotated[str | None, typer.Option(help="Predictor URL (default: 127.0.0.1:services.api_port).")] = (
        None
    )
    allow_remote: Annotated[bool, typer.Option(help="Allow a non-loopback target.")] = False


@app.callback(invoke_without_command=True)
@with_options
def simulate(ctx: typer.Context, drift: DriftOptions, traffic: TrafficOptions, source: ConfigSource) -> None:
    """Send sampled wine traffic to the predictor, drifted by PATTERN, with delayed ground truth.

    Example: `mlstack simulate --pattern sudden --feature alcohol --feature proline --magnitude 3
    --rate 20 --duration 120` (or `make simulate`).
    """
    if ctx.invoked_subcommand is not None:
        return
    from mlstack.data import load_base_dataset
    from mlstack.simulate import (
        DriftSpec,
        SimulationError,
        TrafficGenerator,
        TrafficPlan,
        check_target,
        run_simulation,
    )
    from mlstack.tokens import feedback_token

    cfg = build_config(source)
    target = traffic.url or f"http://{LOOPBACK}:{cfg.services.api_port}"
    try:
        check_target(target, traffic.allow_remote)
        spec = DriftSpec(
            drift.pattern,  # type: ignore[arg-type]  # checked by DriftSpec
            tuple(drift.feature or ()),
            drift.magnitude,
            drift.onset,
            drift.ramp,
            drift.period,
            drift.label_shift,
        )
        generator = TrafficGenerator(load_base_dataset(cfg.data), spec, noise=drift.noise, seed=drift.seed)
        typer.echo(
            f"simulating {drift.pattern} drift of {', '.join(generator.drifted_features)} by "
            f"{drift.magnitude:g} std at {traffic.rate:g} req/s x {traffic.batch_size} for "
            f"{traffic.duration:g}s -> {target}"
        )
        if warning := generator.plausibility_warning():
            typer.secho(f"note: {warning}", fg=typer.colors.YELLOW)
        plan = TrafficPlan(
            rate=traffic.rate,
            duration_s=traffic.duration,
            batch_size=traffic.batch_size,
            feedback_share=traffic.feedback_share,
            feedback_delay_s=traffic.feedback_delay,
            max_requests=traffic.max_requests,
            feedback_token=feedback_token(cfg),
        )
        report = run_simulation(target, generator, plan, progress=typer.echo)
    except SimulationError as exc:
        fail(str(exc), code=EXIT_BAD_INPUT)
    if report.stopped_early:
        typer.echo(f"stopped early: {report.stopped_early}")
    if report.feedback_error:
        typer.secho(f"{report.feedback_failed} labels refused; last: {report.feedback_error}", fg="yellow")
