"""`mlstack registry ...`: the champion's timeline, the current aliases, and rollback."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from mlstack.cli.options import ConfigSource, RegistryTarget, build_config, fail, with_options

app = typer.Typer(no_args_is_help=True, help="The alias timeline and rollback.")


@app.command("history")
@with_options
def history(source: ConfigSource, target: RegistryTarget) -> None:
    """Print the production timeline: every alias move, oldest first."""
    from mlstack import registry

    cfg = build_config(source, target)
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


@app.command("rollback")
@with_options
def rollback(
    source: ConfigSource,
    target: RegistryTarget,
    to: Annotated[
        str | None, typer.Option("--to", help="Version to roll back to (default: previous).")
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Print what would happen only.")] = False,
) -> None:
    """Move the champion back (recorded in the history)."""
    cfg = build_config(source, target)
    if dry_run:
        typer.echo(
            f"dry run: roll {cfg.project.registered_model}@{cfg.project.champion_alias} back to "
            f"{to or 'the previous champion'}"
        )
        return
    from mlstack import registry

    try:
        move = registry.rollback(registry.make_client(cfg), cfg, to)
    except registry.RegistryError as exc:
        fail(str(exc))
    typer.echo(f"champion: v{move.from_version} -> v{move.to_version}")


@app.command("show")
@with_options
def show(source: ConfigSource, target: RegistryTarget) -> None:
    """Print the champion and challenger versions."""
    from mlstack import registry

    cfg = build_config(source, target)
    client = registry.make_client(cfg)
    for alias in (cfg.project.champion_alias, cfg.project.challenger_alias):
        version = registry.version_by_alias(client, cfg.project.registered_model, alias)
        typer.echo(f"{alias}: {('v' + version.version) if version else '-'}")
