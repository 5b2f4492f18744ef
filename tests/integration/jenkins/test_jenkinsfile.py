"""The real Jenkinsfile, executed by Groovy 2.4.21 in harness.groovy, for every build a user meets.

A Jenkins controller cannot run here: harness.groovy stands in for it (Declarative's interpreter,
steps, triggers and params mocked after their upstream sources; Groovy and /bin/sh real). Every
command the builds emit then goes through the real mlstack CLI with --dry-run, and `make -n`.
"""

from __future__ import annotations

import os
import re
import subprocess
import typing

import pytest
import yaml

from mlstack.config import REPO_ROOT, PrimaryMetric, load_config
from mlstack.contract import CT_LABEL, DEFAULT_TRIGGER, STAGES, TRIGGERS
from tests.integration.jenkins import scenarios as sc
from tests.support.binaries import require_binary
from tests.support.jenkins import casc
from tests.support.jenkins.cli import dry_run
from tests.support.jenkins.harness import CLI_PATH, Build, JenkinsfileRun

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("name", list(sc.SCENARIOS))
def test_scenario(jenkins_run: JenkinsfileRun, name: str) -> None:
    """Each build runs exactly its expected stages, commands, post conditions and result."""
    _, expected = sc.SCENARIOS[name]
    build = jenkins_run.builds[name]
    sc.check(build, expected)
    print(build.summary())


@pytest.mark.parametrize("name", list(sc.REFUSED))
def test_refused_requests_start_no_build(jenkins_run: JenkinsfileRun, name: str) -> None:
    """Resolved alerts, alerts without a CT label or with a forged one, and a bad token start nothing."""
    _, reason = sc.REFUSED[name]
    build = jenkins_run.builds[name]
    assert not build.triggered, build.summary()
    assert reason in build.reason


def _mlstack_calls(builds: typing.Iterable[Build]) -> dict[tuple[str, ...], dict[str, str]]:
    """Every distinct `mlstack` call of every build, with the environment its `sh` step had."""
    calls: dict[tuple[str, ...], dict[str, str]] = {}
    for build in builds:
        for step in build.sh_steps:
            for argv in step.argv:
                if argv[0] == CLI_PATH:
                    key = (*argv, step.env.get(sc.APPROVER, ""))
                    calls.setdefault(key, dict(step.env))
    return calls


def test_every_command_is_accepted_by_the_real_cli(jenkins_run: JenkinsfileRun) -> None:
    """Every `mlstack` call of every scenario passes the CLI's own argument and config checks."""
    builds = [b for b in jenkins_run.builds.values() if b.triggered]
    calls = _mlstack_calls(builds)
    assert len(calls) > 50
    rejected = []
    for key, env in calls.items():
        code, output = dry_run(key[:-1], env)
        if code != 0 or "dry run" not in output:
            rejected.append(f"{' '.join(key[:-1])}\n  -> exit {code}: {output.strip()[-400:]}")
    assert rejected == [], "\n".join(rejected)


def test_parameter_values_reach_the_cli_config(jenkins_run: JenkinsfileRun) -> None:
    """With every parameter changed, the CLI's resolved configuration shows each new value."""
    build = jenkins_run.builds[sc.EVERYTHING_FLIPPED.name]
    (step,) = [s for s in build.sh_steps if s.stage == "Start platform"]
    code, output = dry_run(step.argv[0], step.env)
    assert code == 0, output
    values = sc.ALTERNATIVES
    for expected in (
        f"trigger={values[sc.TRIGGER]}",
        f"tracking_uri={values['MLFLOW_TRACKING_URI']}",
        f"model={values['MODEL_NAME']}",
        f"experiment={values['EXPERIMENT_NAME']}",
        f"metric={values['PRIMARY_METRIC']}",
        f"floor={float(str(values['GATE_FLOOR']))}",
        f"min_improvement={float(str(values['GATE_MIN_IMPROVEMENT']))}",
        f"force={values['FORCE_PROMOTE']}",
        f"skip_training={values['SKIP_TRAINING']}",
        f"approval={values['REQUIRE_APPROVAL']}",
        f"rollback_to={values['ROLLBACK_TO_VERSION']}",
        f"candidates={str(values['MODELS']).split(',')}",
        f"runtime={values['RUNTIME']}",
    ):
        assert expected in output, f"{expected!r} did not reach the CLI:\n{output}"
    (rollback,) = [a for s in build.sh_steps for a in s.argv if a[1:3] == ("registry", "rollback")]
    code, output = dry_run(rollback, build.sh_steps[0].env)
    assert code == 0 and f"back to {values['ROLLBACK_TO_VERSION']}" in output, output


def test_one_step_end_to_end_with_the_real_binary(jenkins_run: JenkinsfileRun) -> None:
    """The `sh` script itself, through /bin/sh and the installed .venv/bin/mlstack (no stand-in)."""
    cli = REPO_ROOT / CLI_PATH
    if not cli.exists():
        pytest.fail(f"{cli} is missing: bootstrap the venv first (make venv)", pytrace=False)
    (step,) = [s for s in jenkins_run.builds["Alertmanager drift"].sh_steps if s.stage == "Build images"]
    env = {k: v for k, v in step.env.items() if k != "WORKSPACE"}
    env["PATH"] = os.environ["PATH"]
    env["MLSTACK_ARGS"] += " --dry-run"  # the script expands $MLSTACK_ARGS unquoted: one more word
    done = subprocess.run(
        [require_binary("sh"), "-xe", "-c", step.script], cwd=REPO_ROOT, env=env, capture_output=True,
        text=True,
        timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "dry run: stages build" in done.stdout and "trigger=drift" in done.stdout


def test_the_lint_stage_is_a_real_make_invocation(jenkins_run: JenkinsfileRun) -> None:
    (step,) = [s for s in jenkins_run.builds["manual defaults"].sh_steps if s.stage == "Lint and unit tests"]
    ((program, *args),) = step.argv
    assert program == "make"
    done = subprocess.run(
        [require_binary("make"), "-n", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "pytest" in done.stdout and "--junitxml=.mlops/reports/junit.xml" in done.stdout
    assert "ruff check" in done.stdout


def test_every_stage_is_one_project_command(jenkins_run: JenkinsfileRun) -> None:
    """The Jenkinsfile is glue: a stage runs one `sh` step calling one program (the CLI or make)."""
    build = jenkins_run.builds["approval given"]
    parents = {"Continuous training", "Release"}
    for stage in build.ran:
        steps = [s for s in build.sh_steps if s.stage == stage and s.section == "steps"]
        if stage in parents or stage == "Checkout":
            assert steps == [], stage
            continue
        (step,) = steps
        (argv,) = step.argv
        assert argv[0] in {CLI_PATH, "make"}, argv
    (checkout,) = [s for s in build.steps if s["step"] == "checkout"]
    assert checkout["stage"] == "Checkout"


def test_stage_order_is_the_local_runner_order(jenkins_run: JenkinsfileRun) -> None:
    """Jenkins and `mlstack run` run the same stages in the same order."""
    assert tuple(jenkins_run.builds["approval given"].cli_stages()) == STAGES


def test_every_parameter_changes_what_the_build_runs(jenkins_run: JenkinsfileRun) -> None:
    """A parameter that reaches no command and steers no stage would be a dead switch."""
    declared = [p["name"] for p in jenkins_run.parameters]
    assert sorted(sc.ALTERNATIVES) == sorted(declared), "scenarios.ALTERNATIVES must cover every parameter"
    default = jenkins_run.builds["manual defaults"]
    for name, value in sc.ALTERNATIVES.items():
        build = jenkins_run.builds[sc.flipped(name).name]
        assert build.result == "SUCCESS", build.summary()
        assert build.params[name] == value
        assert (build.commands, build.ran) != (default.commands, default.ran), f"{name} changes nothing"
        if isinstance(value, str):
            assert any(value in c for c in build.commands), f"{name}={value} reaches no command"


def test_string_parameters_are_trimmed(jenkins_run: JenkinsfileRun) -> None:
    """`trim: true`: stray spaces typed into Build with Parameters do not reach the CLI."""
    build = jenkins_run.builds[sc.PADDED.name]
    assert build.params["GATE_FLOOR"] == "0.9" and build.params["MODELS"] == "svc,knn"
    assert all("--floor=0.9 " in c for c in build.commands if c.startswith(f"{CLI_PATH} stage"))


def test_approval_waits_two_hours_and_records_the_approver(jenkins_run: JenkinsfileRun) -> None:
    build = jenkins_run.builds["approval given"]
    (asked,) = build.inputs
    assert asked["stage"] == sc.APPROVAL_STAGE
    assert asked["message"] and asked["ok"] and asked["submitterParameter"] == sc.APPROVER
    # Innermost first to expire: the stage's own 2 h, inside the whole build's 4 h.
    assert [(t["time"], t["unit"]) for t in asked["timeouts"]] == [(4, "HOURS"), (2, "HOURS")]
    (approve,) = [s for s in build.sh_steps if s.stage == sc.APPROVAL_STAGE]
    assert approve.env[sc.APPROVER] == "alice"
    assert approve.argv[0][1:3] == ("stage", sc.APPROVE) and "--approve" in approve.argv[0]
    aborted = jenkins_run.builds["approval aborted"]
    (post,) = [s for s in aborted.sh_steps if s.section == "post aborted"]
    assert "--no-approve" in post.argv[0], "an aborted approval records the challenger as pending"
    timed_out = jenkins_run.builds["approval timed out"]
    assert "2 HOURS" in str(timed_out.error)


def test_alertmanager_variables_reach_the_build(jenkins_run: JenkinsfileRun) -> None:
    build = jenkins_run.builds["Alertmanager drift"]
    (cause,) = build.causes
    assert cause["shortDescription"] == "Alertmanager: DataDriftDetected is firing, retrain (drift)"
    env = build.sh_steps[0].env
    assert env["ALERT_NAME"] == "DataDriftDetected" and env["ALERT_STATUS"] == "firing"
    assert env[sc.TRIGGER] == sc.DRIFT


def test_every_retraining_alert_label_is_a_trigger(jenkins_run: JenkinsfileRun) -> None:
    """Each ct_trigger label the alert rules set is a TRIGGER_REASON choice with a webhook scenario."""
    rules = yaml.safe_load((REPO_ROOT / "prometheus/rules/alerts.yml").read_text())
    labels = {
        rule["labels"][CT_LABEL]
        for group in rules["groups"]
        for rule in group["rules"]
        if CT_LABEL in rule.get("labels", {})
    }
    assert labels, "the alert rules define no ct_trigger label"
    webhook_builds = {
        b.params[sc.TRIGGER]
        for b in jenkins_run.builds.values()
        if b.triggered and b.causes[0]["_class"].endswith("GenericCause")
    }
    assert labels <= webhook_builds, labels - webhook_builds
    (choice,) = [p for p in jenkins_run.parameters if p["name"] == sc.TRIGGER]
    assert labels <= set(choice["choices"])


def test_webhook_token_is_the_credential_alertmanager_sends(jenkins_run: JenkinsfileRun) -> None:
    (gwt,) = [t for t in jenkins_run.triggers if t["class"].endswith("GenericTrigger")]
    assert gwt["token"] is None, "a literal token in the Jenkinsfile"
    assert gwt["tokenCredentialId"] in casc.string_credentials({"MLSTACK_WEBHOOK_TOKEN": "x"})
    assert gwt["printPostContent"] is False
    alertmanager = yaml.safe_load((REPO_ROOT / "alertmanager/alertmanager.yml").read_text())
    hooks = [hook for receiver in alertmanager["receivers"] for hook in receiver.get("webhook_configs", [])]
    (hook,) = [h for h in hooks if h["url"].endswith("/generic-webhook-trigger/invoke")]
    assert hook["http_config"]["authorization"]["type"] == "Bearer"  # read by GenericWebHookRequestReceiver
    routes = [r for r in alertmanager["route"].get("routes", []) if r["receiver"] == "retrain-webhook"]
    assert routes and routes[0]["group_by"] == [CT_LABEL], "commonLabels needs grouping by the CT label"


def test_post_actions_archive_and_clean_only_this_project(jenkins_run: JenkinsfileRun) -> None:
    build = jenkins_run.builds["health checks fail"]
    (cleanup,) = [s for s in build.sh_steps if s.section == "post cleanup"]
    (argv,) = cleanup.argv
    assert argv[:3] == ("docker", "image", "prune") and "--force" in argv
    assert (
        "label=com.docker.compose.project=mlstack" in argv
        and argv[argv.index("label=com.docker.compose.project=mlstack") - 1] == "--filter"
    )
    assert not {"-a", "--all", "system"} & set(argv)
    (archive,) = [s for s in build.steps if s["step"] == "archiveArtifacts"]
    (junit,) = [s for s in build.steps if s["step"] == "junit"]
    assert archive["section"] == junit["section"] == "post always"
    assert archive["args"] == {"artifacts": ".mlops/reports/**", "allowEmptyArchive": True}
    assert junit["args"] == {"testResults": ".mlops/reports/junit*.xml", "allowEmptyResults": True}


def test_pipeline_options(jenkins_run: JenkinsfileRun) -> None:
    options = {o["name"]: o["args"] for o in jenkins_run.definition["options"]}
    assert set(options) == {
        "disableConcurrentBuilds",
        "timeout",
        "timestamps",
        "buildDiscarder",
        "skipDefaultCheckout",
    }
    assert options["timeout"] == {"time": 4, "unit": "HOURS"}
    assert options["buildDiscarder"]["name"] == "logRotator"
    assert jenkins_run.definition["agent"] == "any"
    # skipDefaultCheckout: the only checkout is the Checkout stage's.
    build = jenkins_run.builds["manual defaults"]
    assert [s["stage"] for s in build.steps if s["step"] == "checkout"] == ["Checkout"]


def test_parameter_defaults_follow_mlstack_yaml(jenkins_run: JenkinsfileRun) -> None:
    """A Jenkins build with default parameters trains exactly what `mlstack run` would."""
    config = load_config(REPO_ROOT / "mlstack.yaml", environ={})
    params = {p["name"]: p for p in jenkins_run.parameters}
    assert params["EXPERIMENT_NAME"]["defaultValue"] == config.project.experiment
    assert params["MODEL_NAME"]["defaultValue"] == config.project.registered_model
    assert params["MODELS"]["defaultValue"] == ",".join(c.name for c in config.training.candidates)
    assert params["PRIMARY_METRIC"]["defaultValue"] == config.training.primary_metric
    assert set(params["PRIMARY_METRIC"]["choices"]) == set(typing.get_args(PrimaryMetric))
    assert float(params["GATE_FLOOR"]["defaultValue"]) == config.gate.floor
    assert float(params["GATE_MIN_IMPROVEMENT"]["defaultValue"]) == config.gate.min_improvement
    assert params["REQUIRE_APPROVAL"]["defaultValue"] is config.gate.require_approval
    assert tuple(params[sc.TRIGGER]["choices"]) == TRIGGERS
    assert params[sc.TRIGGER]["defaultValue"] == DEFAULT_TRIGGER
    assert params["ROLLBACK_TO_VERSION"]["defaultValue"] == ""
    assert all(p["description"] for p in params.values()), "every parameter needs a description"
    assert all(p["trim"] for p in params.values() if p["type"] == "string")


def test_scheduled_run_names_its_reason(jenkins_run: JenkinsfileRun) -> None:
    (cron,) = [t for t in jenkins_run.triggers if t["class"].endswith("ParameterizedTimerTrigger")]
    spec, _, _ = cron["parameterizedSpecification"].partition("%")
    assert len(spec.split()) == 5, "five cron fields"
    assert jenkins_run.builds["cron"].causes[0]["_class"].endswith("ParameterizedTimerTriggerCause")


def test_docs_explain_every_parameter(jenkins_run: JenkinsfileRun) -> None:
    docs = (REPO_ROOT / "docs" / "jenkins.md").read_text()
    for parameter in jenkins_run.parameters:
        assert f"`{parameter['name']}`" in docs, parameter["name"]
    for topic in ("--profile jenkins", "generic-webhook-trigger/invoke", "docker.sock"):
        assert topic in docs, topic
    assert re.search(r"Groovy 2\.4\.21", docs)


# What the executed builds use -> the plugin providing it (steps of workflow-aggregator's set aside).
PROVIDED_BY = {
    "trigger:GitHubPushTrigger": "github",
    "trigger:ParameterizedTimerTrigger": "parameterized-scheduler",
    "trigger:GenericTrigger": "generic-webhook-trigger",
    "trigger:SCMTrigger": "git",  # polling needs an SCM: the git plugin's
    "step:checkout": "git",
    "step:junit": "junit",
    "option:timestamps": "timestamper",
    "step:sh": "workflow-aggregator",
    "step:catchError": "workflow-aggregator",
    "step:archiveArtifacts": "workflow-aggregator",
    "input": "workflow-aggregator",
}


def test_plugins_cover_what_the_pipeline_uses(jenkins_run: JenkinsfileRun) -> None:
    used = {f"trigger:{t['class'].rsplit('.', 1)[-1]}" for t in jenkins_run.triggers}
    used |= {f"option:{o['name']}" for o in jenkins_run.definition["options"]}
    for build in jenkins_run.builds.values():
        if build.triggered:
            used |= {f"step:{s['step']}" for s in build.steps}
            used |= {"input"} if build.inputs else set()
    pins = {
        line.split(":", 1)[0]
        for line in (REPO_ROOT / "jenkins" / "plugins.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    core = {
        "option:disableConcurrentBuilds",
        "option:buildDiscarder",
        "option:timeout",
        "option:skipDefaultCheckout",
    }
    unknown = used - set(PROVIDED_BY) - core
    assert unknown == set(), f"which plugin provides {unknown}?"
    missing = {f"{what} needs {PROVIDED_BY[what]}" for what in used - core if PROVIDED_BY[what] not in pins}
    assert missing == set()
