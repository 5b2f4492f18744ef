"""The registry, approval, services, platform, render and CT command groups, without servers.

What needs a real MLflow server (approve, history, rollback itself) is covered by the integration
tests; here: dry runs, refusals and the commands that only read local state.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from mlstack.cli import app
from mlstack.contract import REQUIRED_SECRETS, WEBHOOK_TOKEN_ENV
from mlstack.ct import AuditLog


def invoke(state: Path, *args: str, **env: str | None) -> Result:
    return CliRunner().invoke(app, list(args), env={"MLSTACK__SERVICES__STATE_DIR": str(state), **env})


def flat(output: str) -> str:
    """The output without rich's error box and line wrapping."""
    return " ".join(output.replace("│", " ").split())


def test_registry_rollback_dry_run_names_model_alias_and_target(tmp_path: Path) -> None:
    result = invoke(tmp_path, "registry", "rollback", "--to", "3", "--model-name", "m", "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.output == "dry run: roll m@champion back to 3\n"
    alias = invoke(tmp_path, "registry", "rollback", "--set", "project.champion_alias=prod", "--dry-run")
    assert alias.output == "dry run: roll wine-classifier@prod back to the previous champion\n"


@pytest.mark.parametrize(
    "args",
    [
        ["registry", "history", "--set", "gate.floor=9"],
        ["registry", "show", "--set", "gate.floor=9"],
        ["registry", "rollback", "--set", "gate.floor=9", "--dry-run"],
        ["approve", "3", "--set", "gate.floor=9"],
        ["reject", "3", "--set", "gate.floor=9"],
        ["services", "status", "--set", "gate.floor=9"],
        ["render", "monitoring", "--set", "gate.floor=9"],
        ["ct", "audit", "--set", "gate.floor=9"],
        ["ct", "check", "--set", "gate.floor=9"],
        ["simulate", "--set", "gate.floor=9"],
    ],
)
def test_every_group_refuses_an_invalid_configuration_with_exit_2(tmp_path: Path, args: list[str]) -> None:
    result = invoke(tmp_path, *args)
    assert result.exit_code == 2, result.output
    assert "error: invalid configuration:" in result.output and "gate.floor" in flat(result.output)


def test_approve_needs_a_version(tmp_path: Path) -> None:
    result = invoke(tmp_path, "approve")
    assert result.exit_code == 2 and "Missing argument 'version'" in flat(result.output)


def test_services_status_without_services(tmp_path: Path) -> None:
    result = invoke(tmp_path, "services", "status")
    assert result.exit_code == 0 and result.output == "no local services running\n"


def test_platform_check_env_names_every_missing_secret(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(f"{REQUIRED_SECRETS[0]}=x\n")
    cleared: dict[str, str | None] = dict.fromkeys(REQUIRED_SECRETS)  # unset: only the file counts
    missing = invoke(tmp_path, "platform", "check-env", "--env-file", str(env_file), **cleared)
    assert missing.exit_code == 1
    assert f"required secrets not set: {', '.join(REQUIRED_SECRETS[1:])}." in flat(missing.output)
    env_file.write_text("".join(f"{name}=x\n" for name in REQUIRED_SECRETS))
    ok = invoke(tmp_path, "platform", "check-env", "--env-file", str(env_file), **cleared)
    assert ok.exit_code == 0 and ok.output == f"all {len(REQUIRED_SECRETS)} required secrets are set\n"


def test_render_monitoring_writes_every_file_and_refuses_unknown_targets(tmp_path: Path) -> None:
    result = invoke(tmp_path, "render", "monitoring", "--target", "local", "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    written = [Path(line.removeprefix("wrote ")) for line in result.output.splitlines()]
    assert written and all(path.is_file() and path.is_relative_to(tmp_path / "out") for path in written)
    bad = invoke(tmp_path, "render", "monitoring", "--target", "nomad")
    assert bad.exit_code == 2 and "'nomad': local | compose | k8s" in flat(bad.output)


def test_trigger_serve_refuses_compose_and_needs_the_token(tmp_path: Path) -> None:
    no_token = invoke(tmp_path, "trigger", "serve", **{WEBHOOK_TOKEN_ENV: " "})
    assert no_token.exit_code == 2 and f"set {WEBHOOK_TOKEN_ENV}" in no_token.output
    compose = invoke(tmp_path, "trigger", "serve", "--runtime", "compose", **{WEBHOOK_TOKEN_ENV: "t"})
    assert compose.exit_code == 2 and "compose uses Jenkins" in flat(compose.output)


def test_ct_schedule_refuses_compose_and_ct_check_unknown_triggers(tmp_path: Path) -> None:
    compose = invoke(tmp_path, "ct", "schedule", "--runtime", "compose")
    assert compose.exit_code == 2 and "parameterizedCron" in flat(compose.output)
    bogus = invoke(tmp_path, "ct", "check", "--trigger", "bogus")
    assert bogus.exit_code == 2 and "'bogus' is not one of" in flat(bogus.output)


def test_ct_audit_prints_the_newest_entries(tmp_path: Path) -> None:
    empty = invoke(tmp_path, "ct", "audit")
    assert empty.exit_code == 0 and empty.output.startswith("no decisions recorded in ")
    audit = AuditLog(tmp_path / "ct" / "audit.jsonl")
    audit.record("ran", "pipeline started", trigger="drift", source="alertmanager")
    audit.record("cooled-down", "cooldown: 3s ago", trigger="accuracy", source="alertmanager")
    table = invoke(tmp_path, "ct", "audit", "--last", "1")
    assert table.exit_code == 0
    (line,) = table.output.splitlines()
    assert line.split()[1:4] == ["cooled-down", "accuracy", "alertmanager"] and line.endswith(
        "cooldown: 3s ago"
    )
    as_json = invoke(tmp_path, "ct", "audit", "--json")
    assert [e["decision"] for e in map(__import__("json").loads, as_json.output.splitlines())] == [
        "ran",
        "cooled-down",
    ]
    assert invoke(tmp_path, "ct", "audit", "--last", "0").output.startswith("no decisions recorded")


def test_simulate_refuses_remote_targets(tmp_path: Path) -> None:
    result = invoke(tmp_path, "simulate", "--url", "http://10.1.2.3:1", "--duration", "1")
    assert result.exit_code == 2 and "not loopback" in flat(result.output)
