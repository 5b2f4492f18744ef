"""The Jenkinsfile's `mlstack` calls through the real CLI with `--dry-run`, as the build would run them."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from functools import cache

import yaml

from mlstack.config import REPO_ROOT
from tests.support.jenkins.harness import CLI_PATH

# Host variables the CLI may keep (the interpreter needs them); every other host variable is removed so
# that only what Jenkins gives the step (and compose gives the container) reaches the CLI.
_HOST_KEEP = {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV"}
# Set by the harness for its own sandbox, not by Jenkins.
_HARNESS_ONLY = {"PATH", "WORKSPACE"}


@cache
def container_env() -> dict[str, str]:
    """The jenkins service's fixed environment in docker-compose.yaml (values without `${...}`)."""
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yaml").read_text())
    environment = compose["services"]["jenkins"]["environment"]
    return {k: str(v) for k, v in environment.items() if "${" not in str(v)}


def dry_run(argv: Sequence[str], step_env: Mapping[str, str]) -> tuple[int, str]:
    """Run one `.venv/bin/mlstack ...` call in-process with `--dry-run`: exit code and output.

    In-process (typer's CliRunner) because a fresh interpreter per command costs seconds of imports;
    test_every_command_is_accepted_by_the_real_cli also runs one step end to end with the real binary.
    """
    from typer.testing import CliRunner

    from mlstack.cli import app

    assert argv and argv[0] == CLI_PATH, f"not an mlstack call: {argv}"
    env: dict[str, str | None] = {k: None for k in os.environ if k not in _HOST_KEEP}
    env.update(container_env())
    env.update({k: v for k, v in step_env.items() if k not in _HARNESS_ONLY})
    result = CliRunner().invoke(app, [*argv[1:], "--dry-run"], env=env)
    return result.exit_code, result.output
