"""The Jenkinsfile against the real CLI: every command it runs is accepted, every parameter reaches a flag.

Jenkins cannot run here, so the pipeline is read statically (tests/support/jenkinsfile.py) and each
`sh` command is executed by the real shell and the real `.venv/bin/mlstack` with `--dry-run`.
"""

from __future__ import annotations

import os
import re
import subprocess
import typing
from pathlib import Path

import pytest
import yaml

from mlstack.config import PrimaryMetric, load_config
from mlstack.contract import STAGES, TriggerReason
from tests.support import jenkinsfile as jf
from tests.support.binaries import require_binary

REPO = jf.REPO_ROOT
TEXT = jf.strip_comments(jf.JENKINSFILE.read_text())
PARAMS = {p.name: p for p in jf.parameters(TEXT)}
ENV = jf.environment(TEXT)
POST_COMMANDS = [cmd for body in jf.blocks(TEXT, "post") for cmd in jf.sh_steps(body)]
MLSTACK_COMMANDS = [c for c in jf.stage_commands(TEXT) + POST_COMMANDS if c.startswith(jf.CLI_PATH)]

# Parameters that steer Jenkins itself (which stages run) rather than a CLI flag.
STAGE_SWITCHES = {"REBUILD_IMAGES": "params.REBUILD_IMAGES"}
ALL_ON = {
    "MLFLOW_TRACKING_URI": "http://mlflow.test:5999",
    "EXPERIMENT_NAME": "exp-contract",
    "MODEL_NAME": "model-contract",
    "MODELS": "svc,knn",
    "PRIMARY_METRIC": "accuracy",
    "GATE_FLOOR": "0.91",
    "GATE_MIN_IMPROVEMENT": "0.02",
    "FORCE_PROMOTE": True,
    "REBUILD_IMAGES": False,
    "SKIP_TRAINING": True,
    "ROLLBACK_TO_VERSION": "3",
    "TRIGGER_REASON": "drift",
    "REQUIRE_APPROVAL": True,
}


def _defaults() -> dict[str, str | bool]:
    return {name: p.default for name, p in PARAMS.items()}


def _cli() -> Path:
    cli = REPO / jf.CLI_PATH
    if not cli.exists():
        pytest.fail(f"{cli} is missing: bootstrap the venv first (make venv)", pytrace=False)
    return cli


def _shell_env(params: dict[str, str | bool], trigger: str) -> dict[str, str]:
    """What Jenkins hands the `sh` step: parameters as variables plus the rendered environment block."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("MLSTACK__") and k != "MLFLOW_TRACKING_URI"
    }
    env.update(
        {name: str(value).lower() if isinstance(value, bool) else value for name, value in params.items()}
    )
    block = {"BUILD_TAG": "jenkins-mlstack-42", "MLSTACK_TRIGGER": trigger, "COMPOSE_PROJECT_NAME": "mlstack"}
    for name in ("MLSTACK_ARGS", "MLSTACK_REGISTRY_ARGS"):
        block[name] = jf.render(ENV[name], params, block)
    env.update(block)
    return env


def _dry_run(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run one Jenkinsfile `sh` script through /bin/sh and the real binary, with `--dry-run` added."""
    _cli()
    script = re.sub(r"^(\.venv/bin/mlstack (?:stage|registry rollback))", r"\1 --dry-run", command)
    assert "--dry-run" in script, f"not an mlstack stage/registry command: {command}"
    return subprocess.run(
        [require_binary("sh"), "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


def _shell_words(command: str, env: dict[str, str]) -> list[str]:
    """The argv /bin/sh hands the CLI for this script (word splitting exactly as in the `sh` step)."""
    script = command.replace(jf.CLI_PATH, "printf '%s\\0'", 1)
    out = subprocess.run(
        [require_binary("sh"), "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.split("\0")[:-1]


def _command_forms() -> list[str]:
    """One representative per command shape: stage commands differing only in stage names are merged."""
    forms: dict[str, list[str]] = {}
    for command in MLSTACK_COMMANDS:
        words = command.split()
        if words[:2] == [jf.CLI_PATH, "stage"]:
            names = [w for w in words[2:] if not w.startswith(("-", "$"))]
            rest = [w for w in words[2:] if w not in names]
            forms.setdefault(" ".join([*words[:2], "{names}", *rest]), []).extend(names)
        else:
            forms.setdefault(command, [])
    return [form.replace("{names}", " ".join(names)) for form, names in forms.items()]


def _invoke(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    """The real CLI, in-process (one import of mlflow for all commands instead of one per command)."""
    from typer.testing import CliRunner

    from mlstack.cli import app

    cleared: dict[str, str | None] = {k: None for k in os.environ if k.startswith("MLSTACK__")}
    cleared["MLFLOW_TRACKING_URI"] = None
    result = CliRunner().invoke(app, [*argv, "--dry-run"], env={**cleared, "BUILD_TAG": env["BUILD_TAG"]})
    return result.exit_code, result.output


def test_stage_sequence_is_the_local_runner_order() -> None:
    """`mlstack run` and Jenkins execute the same stages in the same order."""
    assert tuple(jf.stage_sequence(jf.stage_commands(TEXT))) == STAGES


def test_every_stage_step_is_one_project_command() -> None:
    """No business logic in Groovy: each stage step is one call to the CLI or to make."""
    for command in jf.stage_commands(TEXT):
        assert re.fullmatch(r"(\.venv/bin/mlstack|make) [^;&|`]+", command), command


@pytest.mark.parametrize(
    ("params", "trigger"),
    [(_defaults(), "push"), ({**_defaults(), **ALL_ON}, "drift")],
    ids=["defaults-push", "every-switch-flipped"],
)
def test_every_cli_command_is_accepted_by_the_real_cli(params: dict[str, str | bool], trigger: str) -> None:
    """Each `sh` script, split by /bin/sh as Jenkins would, is accepted and its values reach the config."""
    env = _shell_env(params, trigger)
    forms = _command_forms()
    assert len(forms) >= 4  # stages, approve --approve, approve --no-approve (post), registry rollback
    outputs: dict[str, str] = {}
    for command in forms:
        argv = _shell_words(command, env)
        assert argv[0] in {"stage", "registry"}, argv
        code, output = _invoke(argv, env)
        assert code == 0, f"{command}\n{argv}\n{output}"
        assert "dry run" in output, command
        outputs[command] = output
    stage_out = next(o for c, o in outputs.items() if c.startswith(f"{jf.CLI_PATH} stage build"))
    expected_values = [
        f"trigger={trigger}",
        f"tracking_uri={params['MLFLOW_TRACKING_URI']}",
        f"model={params['MODEL_NAME']}",
        f"experiment={params['EXPERIMENT_NAME']}",
        f"metric={params['PRIMARY_METRIC']}",
        f"floor={float(str(params['GATE_FLOOR']))}",
        f"min_improvement={float(str(params['GATE_MIN_IMPROVEMENT']))}",
        f"force={params['FORCE_PROMOTE']}",
        f"skip_training={params['SKIP_TRAINING']}",
        f"approval={params['REQUIRE_APPROVAL']}",
        f"rollback_to={params['ROLLBACK_TO_VERSION'] or None}",
        f"candidates={str(params['MODELS']).split(',')}",
    ]
    for value in expected_values:
        assert value in stage_out, f"{value!r} did not reach the CLI:\n{stage_out}"
    rollback = next(o for c, o in outputs.items() if "registry rollback" in c)
    assert f"roll {params['MODEL_NAME']}@champion back to {params['ROLLBACK_TO_VERSION'] or ''}" in rollback
    # End to end once: the real shell running the real installed binary, as the `sh` step does.
    real = _dry_run(forms[0], env)
    assert real.returncode == 0, real.stderr
    assert f"trigger={trigger}" in real.stdout


def test_the_dry_run_check_rejects_bad_arguments() -> None:
    """The contract test can fail: the CLI refuses an unknown flag, candidate or trigger (in-process)."""
    from typer.testing import CliRunner

    from mlstack.cli import app

    args = _shell_env(_defaults(), "manual")["MLSTACK_ARGS"].split()
    runner = CliRunner()
    assert runner.invoke(app, ["stage", "gate", *args, "--dry-run"]).exit_code == 0
    assert runner.invoke(app, ["stage", "gate", *args, "--no-such-flag", "--dry-run"]).exit_code != 0
    bad_model = [a.replace("--models=", "--models=no_such_model,") for a in args]
    result = runner.invoke(app, ["stage", "train", *bad_model, "--dry-run"])
    assert result.exit_code != 0 and "no_such_model" in result.output
    bad_trigger = [a.replace("--trigger=manual", "--trigger=alert") for a in args]
    assert runner.invoke(app, ["stage", "train", *bad_trigger, "--dry-run"]).exit_code != 0


def test_lint_and_unit_stage_is_a_real_make_invocation() -> None:
    (command,) = [c for c in jf.stage_commands(TEXT) if c.startswith("make ")]
    result = subprocess.run(
        [require_binary("make"), "-n", *command.split()[1:]],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "pytest" in result.stdout and "--junitxml=.mlops/reports/junit.xml" in result.stdout
    assert "ruff check" in result.stdout


def test_every_parameter_maps_to_a_pipeline_option() -> None:
    mapping = jf.flag_mapping(ENV["MLSTACK_ARGS"] + "\n" + ENV["MLSTACK_REGISTRY_ARGS"])
    trigger_template = ENV["MLSTACK_TRIGGER"]
    assert "${MLSTACK_TRIGGER}" in ENV["MLSTACK_ARGS"] and "--trigger=" in ENV["MLSTACK_ARGS"]
    assert "params.TRIGGER_REASON" in trigger_template and "'push'" in trigger_template
    mapping["TRIGGER_REASON"] = ["--trigger"]
    for name, condition in STAGE_SWITCHES.items():
        assert any(condition in body for body in jf.blocks(TEXT, "when")), f"{name} steers no stage"
    unmapped = set(PARAMS) - set(mapping) - set(STAGE_SWITCHES)
    assert not unmapped, f"parameters that reach no CLI flag: {sorted(unmapped)}"
    assert set(mapping) <= set(PARAMS), f"flags fed from undeclared parameters: {set(mapping) - set(PARAMS)}"
    for name in ("SKIP_TRAINING", "ROLLBACK_TO_VERSION", "REQUIRE_APPROVAL"):
        assert any(f"params.{name}" in body for body in jf.blocks(TEXT, "when")), f"{name}: no `when` uses it"


def test_parameter_defaults_follow_mlstack_yaml() -> None:
    """A Jenkins build with default parameters trains exactly what `mlstack run` would."""
    config = load_config(REPO / "mlstack.yaml", environ={})
    assert PARAMS["EXPERIMENT_NAME"].default == config.project.experiment
    assert PARAMS["MODEL_NAME"].default == config.project.registered_model
    assert PARAMS["MODELS"].default == ",".join(c.name for c in config.training.candidates)
    assert PARAMS["PRIMARY_METRIC"].default == config.training.primary_metric
    assert set(PARAMS["PRIMARY_METRIC"].choices) == set(typing.get_args(PrimaryMetric))
    assert float(str(PARAMS["GATE_FLOOR"].default)) == config.gate.floor
    assert float(str(PARAMS["GATE_MIN_IMPROVEMENT"].default)) == config.gate.min_improvement
    assert PARAMS["REQUIRE_APPROVAL"].default is config.gate.require_approval
    assert PARAMS["TRIGGER_REASON"].choices == typing.get_args(TriggerReason)
    assert PARAMS["TRIGGER_REASON"].default == "manual"
    assert PARAMS["ROLLBACK_TO_VERSION"].default == ""
    assert all(p.description for p in PARAMS.values()), "every parameter needs a description"


def _generic_trigger() -> str:
    (body,) = re.findall(r"GenericTrigger\((.*?)\n\s*\)\n", TEXT, re.S)
    return body


def _alert_payload(status: str, labels: dict[str, str]) -> dict[str, typing.Any]:
    """The shape of Alertmanager's webhook body (version 4) for one alert group."""
    return {
        "version": "4",
        "status": status,
        "receiver": "retrain-webhook",
        "commonLabels": labels,
        "alerts": [],
    }


def _jsonpath(payload: dict[str, typing.Any], path: str) -> str:
    node: typing.Any = payload
    for key in path.removeprefix("$.").split("."):
        node = node.get(key, "") if isinstance(node, dict) else ""
    return str(node)


def test_alertmanager_webhook_becomes_a_retrain_with_its_reason() -> None:
    """Simulate the Generic Webhook Trigger on Alertmanager payloads: only firing CT alerts start a build."""
    body = _generic_trigger()
    variables = dict(re.findall(r"\[key: '(\w+)', value: '([^']+)'", body))
    assert variables["TRIGGER_REASON"] == "$.commonLabels.ct_trigger"
    assert variables["ALERT_NAME"] == "$.commonLabels.alertname"
    text = re.search(r"regexpFilterText: '([^']*)'", body)
    expression = re.search(r"regexpFilterExpression: '([^']*)'", body)
    assert text and expression

    def fires(payload: dict[str, typing.Any]) -> str | None:
        values = {key: _jsonpath(payload, path) for key, path in variables.items()}
        filtered = re.sub(r"\$(\w+)", lambda m: values[m.group(1)], text.group(1))
        return values["TRIGGER_REASON"] if re.search(expression.group(1), filtered) else None

    drift = {"alertname": "DataDriftDetected", "ct_trigger": "drift"}
    assert fires(_alert_payload("firing", drift)) == "drift"
    assert fires(
        _alert_payload("firing", {"alertname": "LiveAccuracyBelowFloor", "ct_trigger": "accuracy"})
    ) == ("accuracy")
    assert fires(_alert_payload("resolved", drift)) is None
    assert fires(_alert_payload("firing", {"alertname": "PredictorDown"})) is None
    assert fires(_alert_payload("firing", {"alertname": "X", "ct_trigger": "manual; rm -rf /"})) is None
    # Every CT label the alert rules set is accepted, and lands on a TRIGGER_REASON choice.
    rules = yaml.safe_load((REPO / "prometheus/rules/alerts.yml").read_text())
    labels = {
        rule["labels"]["ct_trigger"]
        for group in rules["groups"]
        for rule in group["rules"]
        if "ct_trigger" in rule.get("labels", {})
    }
    assert labels, "the alert rules define no ct_trigger label"
    for label in labels:
        assert fires(_alert_payload("firing", {"alertname": "A", "ct_trigger": label})) == label
        assert label in PARAMS["TRIGGER_REASON"].choices


def test_webhook_token_comes_from_a_credential_alertmanager_can_send() -> None:
    body = _generic_trigger()
    assert "tokenCredentialId: 'mlstack-webhook-token'" in body
    assert not re.search(r"\btoken:\s*'", body), "a literal token in the Jenkinsfile"
    assert "printPostContent: false" in body
    alertmanager = yaml.safe_load((REPO / "alertmanager/alertmanager.yml").read_text())
    hooks = [hook for receiver in alertmanager["receivers"] for hook in receiver.get("webhook_configs", [])]
    (hook,) = [h for h in hooks if h["url"].endswith("/generic-webhook-trigger/invoke")]
    assert (
        hook["http_config"]["authorization"]["type"] == "Bearer"
    )  # the plugin reads `Authorization: Bearer`
    routes = [r for r in alertmanager["route"].get("routes", []) if r["receiver"] == "retrain-webhook"]
    assert routes and routes[0]["group_by"] == ["ct_trigger"], "commonLabels.ct_trigger needs grouping by it"


def test_scheduled_run_names_its_reason() -> None:
    spec = re.search(r"parameterizedCron\('([^']+)'\)", TEXT)
    assert spec, "no scheduled trigger"
    cron, _, assignments = spec.group(1).partition("%")
    assert len(cron.split()) == 5
    assert dict(a.split("=") for a in assignments.split(";")) == {"TRIGGER_REASON": "schedule"}
    assert "githubPush()" in TEXT and re.search(r"pollSCM\('[^']+'\)", TEXT)


def test_post_actions_redeploy_and_clean_only_this_project() -> None:
    release_post = jf.blocks(jf.blocks(TEXT, "stages")[0], "post")
    assert any(f"{jf.CLI_PATH} stage deploy" in " ".join(jf.sh_steps(b)) for b in release_post)
    for command in POST_COMMANDS + jf.stage_commands(TEXT):
        assert "system prune" not in command and "rm -f $(docker" not in command, command
        if "docker" in command and "prune" in command:
            assert "--filter" in command and "com.docker.compose.project=$COMPOSE_PROJECT_NAME" in command
            assert " -a" not in command and "--all" not in command
    archive = re.search(r"archiveArtifacts artifacts: '([^']+)'", TEXT)
    assert archive and archive.group(1) == ".mlops/reports/**"
    assert re.search(r"junit testResults: '\.mlops/reports/junit\*\.xml'", TEXT)


def test_pipeline_options() -> None:
    (options,) = [b for b in jf.blocks(TEXT, "options") if "disableConcurrentBuilds" in b]
    for option in ("disableConcurrentBuilds()", "timeout(", "timestamps()", "buildDiscarder("):
        assert option in options
