"""`mlstack run` and `mlstack stage`: the dry-run plan and the refusals, in-process (CliRunner)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner, Result

from mlstack.cli import app
from mlstack.cli.options import RUNTIMES
from mlstack.contract import STAGES, TRIGGERS


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"MLSTACK__SERVICES__STATE_DIR": "/nonexistent/state"})


def flat(output: str) -> str:
    """The output without rich's error box and line wrapping."""
    return " ".join(output.replace("│", " ").split())


def test_run_dry_run_prints_every_stage_and_the_effective_settings() -> None:
    result = invoke(
        "run", "--dry-run", "--trigger", "push", "--runtime", "compose", "--models", "svc,knn",
        "--floor", "0.9", "--min-improvement", "0.01", "--tracking-uri", "http://mlflow.test:1",
        "--model-name", "m", "--experiment", "e", "--primary-metric", "accuracy", "--require-approval",
        "--force", "--skip-training", "--rollback-to", "3", "--approve", "--build-id", "b-1",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"dry run: stages {' -> '.join(STAGES)}",
        "  runtime=compose trigger=push force=True skip_training=True rollback_to=3 approve=True",
        "  tracking_uri=http://mlflow.test:1 model=m experiment=e",
        "  candidates=['svc', 'knn'] metric=accuracy floor=0.9 min_improvement=0.01 approval=True",
    ]


def test_stage_runs_the_named_stages_in_pipeline_order() -> None:
    result = invoke("stage", "promote", "train", "validate-data", "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == "dry run: stages validate-data -> train -> promote"
    assert "runtime=local trigger=manual force=False skip_training=False rollback_to=None" in result.output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["stage", "tran", "--dry-run"], "unknown stage(s) ['tran']"),
        (["run", "--trigger", "alert", "--dry-run"], f"'alert' is not one of {list(TRIGGERS)}"),
        (["run", "--runtime", "k9s", "--dry-run"], f"'k9s' is not one of {list(RUNTIMES)}"),
        (["run", "--floor", "high", "--dry-run"], "Invalid value for '--floor'"),
        (["run", "--no-such-flag"], "No such option: --no-such-flag"),
        (["stage", "--dry-run"], "Missing argument 'names'"),
    ],
)
def test_bad_parameters_exit_2_with_the_reason(args: list[str], expected: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert expected in flat(result.output), result.output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["run", "--set", "gate.floor=7", "--dry-run"], "gate.floor"),
        (["run", "--models", "svc,nope", "--dry-run"], "unknown candidate(s) ['nope']"),
        (["stage", "gate", "--set", "no.such.key=1", "--dry-run"], "no"),
    ],
)
def test_an_invalid_configuration_exits_2_before_anything_runs(args: list[str], expected: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert "error: invalid configuration:" in result.output and expected in result.output


def test_python_dash_m_runs_the_same_cli() -> None:
    """The CT trigger and the tests start pipelines as `python -m mlstack.cli`."""
    result = subprocess.run(
        [sys.executable, "-m", "mlstack.cli", "stage", "smoke", "--dry-run"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("dry run: stages smoke\n")


def test_every_command_group_is_registered() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("run", "stage", "approve", "reject", "registry", "services", "render", "platform",
                    "trigger", "ct", "simulate"):  # fmt: skip
        assert f" {command} " in result.output, command
