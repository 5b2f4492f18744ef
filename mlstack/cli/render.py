"""`mlstack render ...`: configuration files rendered from mlstack.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlstack.cli.options import ConfigSource, build_config, with_options
from mlstack.monitoring.endpoints import TARGETS as MONITORING_TARGETS

app = typer.Typer(no_args_is_help=True, help="Render configuration from mlstack.yaml.")


@app.command("monitoring")
@with_options
def monitoring(
    source: ConfigSource,
    target: Annotated[str, typer.Option(help=" | ".join(MONITORING_TARGETS))] = "compose",
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Output directory (default: the target's, e.g. the repo for compose)."),
    ] = None,
) -> None:
    """Render Prometheus, Alertmanager and Grafana config (rules, tests, dashboards) from mlstack.yaml.

    $MLSTACK_WEBHOOK_URL overrides the CT webhook URL; $MLSTACK_WEBHOOK_TOKEN is the local target's token.
    """
    from mlstack.monitoring.render import render_monitoring as render

    if target not in MONITORING_TARGETS:
        raise typer.BadParameter(f"{target!r}: {' | '.join(MONITORING_TARGETS)}", param_hint="--target")
    rendered = render(build_config(source), target, out)
    for path in rendered.all:
        typer.echo(f"wrote {path}")
