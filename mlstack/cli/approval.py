"""`mlstack approve` and `mlstack reject`: the human decision on a quarantined challenger."""

from __future__ import annotations

from typing import Annotated

import typer

from mlstack.cli.options import ConfigSource, RegistryTarget, build_config, fail, with_options


def _decide(decision: str, version: str, source: ConfigSource, target: RegistryTarget) -> None:
    from mlstack import approval

    cfg = build_config(source, target)
    try:
        typer.echo(approval.approve(cfg, version) if decision == "approve" else approval.reject(cfg, version))
    except approval.ApprovalError as exc:
        fail(str(exc))


@with_options
def approve(
    version: Annotated[str, typer.Argument(help="The challenger version to approve.")],
    source: ConfigSource,
    target: RegistryTarget,
) -> None:
    """Approve a quarantined challenger: it becomes champion (recorded)."""
    _decide("approve", version, source, target)


@with_options
def reject(
    version: Annotated[str, typer.Argument(help="The challenger version to reject.")],
    source: ConfigSource,
    target: RegistryTarget,
) -> None:
    """Reject a quarantined challenger (recorded)."""
    _decide("reject", version, source, target)


def register(app: typer.Typer) -> None:
    """Add `approve` and `reject` to the root command."""
    app.command()(approve)
    app.command()(reject)
