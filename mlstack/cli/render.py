"""`mlstack render ...`: configuration files rendered from mlstack.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlstack.cli.options import ConfigSource, build_config, check_choice, with_options
from mlstack.config import REPO_ROOT

app = typer.Typer(no_args_is_help=True, help="Render configuration from mlstack.yaml.")
RENDER_TARGETS: tuple[str, ...] = ("local", "compose")


@app.command("monitoring")
@with_options
def monitoring(
    source: ConfigSource,
    target: Annotated[str, typer.Option(help=" | ".join(RENDER_TARGETS))] = "compose",
    out: Annotated[Path | None, typer.Option("--out", help="Output directory (default: the repo).")] = None,
) -> None:
    """Render Prometheus and Alertmanager configuration from mlstack.yaml."""
    from mlstack import monitoring as rendering

    check_choice(target, RENDER_TARGETS, "--target")
    cfg = build_config(source)
    rendered = rendering.render_monitoring(cfg, "local" if target == "local" else "compose", out or REPO_ROOT)
    for path in rendered.all:
        typer.echo(f"wrote {path}")
