"""`mlstack platform ...`: checks before the compose platform starts (`make up`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlstack.cli.options import fail
from mlstack.config import REPO_ROOT
from mlstack.contract import REQUIRED_SECRETS

app = typer.Typer(no_args_is_help=True, help="The compose platform.")


@app.command("check-env")
def check_env(
    env_file: Annotated[Path, typer.Option(help="The compose .env file.")] = REPO_ROOT / ".env",
) -> None:
    """Refuse to go on when a required secret is missing from the environment and .env."""
    from mlstack.runtime.compose import missing_secrets

    missing = missing_secrets(env_file)
    if missing:
        fail(
            f"required secrets not set: {', '.join(missing)}. Copy .env.example to .env and fill them in "
            "(see docs/containers.md); there are no default passwords."
        )
    typer.echo(f"all {len(REQUIRED_SECRETS)} required secrets are set")
