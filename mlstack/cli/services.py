"""`mlstack services ...`: the local runtime's processes, without running the pipeline."""

from __future__ import annotations

import typer

from mlstack.cli.options import ConfigSource, build_config, with_options

app = typer.Typer(no_args_is_help=True, help="Local runtime services.")


@app.command("stop")
@with_options
def stop(source: ConfigSource) -> None:
    """Stop every local service started by the pipeline."""
    from mlstack.runtime.local import LocalRuntime

    cfg = build_config(source)
    LocalRuntime(cfg).stop(cfg)


@app.command("status")
@with_options
def status(source: ConfigSource) -> None:
    """Show which local services run."""
    from mlstack.runtime.local import LocalRuntime

    cfg = build_config(source)
    procs = LocalRuntime(cfg).procs
    names = procs.names()
    if not names:
        typer.echo("no local services running")
    for name in names:
        typer.echo(f"{name:<13} pid {procs.pid(name) or '-'}  log {procs.log_file(name)}")


@app.command("start")
@with_options
def start(source: ConfigSource) -> None:
    """Start (or reuse) every local service without running the pipeline."""
    from mlstack.runtime.local import LocalRuntime

    cfg = build_config(source)
    runtime = LocalRuntime(cfg)
    runtime.start_platform(cfg)
    runtime.deploy(cfg)
    for name, state in runtime.healthcheck(cfg).items():
        typer.echo(f"{name}: {state}")
