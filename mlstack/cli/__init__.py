"""The `mlstack` command line: the pipeline, its stages, the registry and the local services.

One module per command group; `mlstack.cli.options` holds the options they share.
"""

from __future__ import annotations

import sys

import typer

from mlstack.cli import approval, ct, feedback, pipeline, platform, registry, render, services, simulate

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.splitlines()[0])
pipeline.register(app)
approval.register(app)
app.add_typer(registry.app, name="registry")
app.add_typer(services.app, name="services")
app.add_typer(render.app, name="render")
app.add_typer(platform.app, name="platform")
app.add_typer(ct.trigger_app, name="trigger")
app.add_typer(ct.ct_app, name="ct")
app.add_typer(simulate.app, name="simulate")
app.add_typer(feedback.app, name="feedback")


def main() -> None:
    """Console entry point (`mlstack`, `python -m mlstack.cli`)."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
