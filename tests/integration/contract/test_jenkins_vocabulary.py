"""The Jenkinsfile and the seed job in jenkins/casc.yaml speak the contract's vocabulary.

Neither can import Python, so both are executed in Groovy 2.4.21 by the Jenkins harness
(tests/support/jenkins/harness.groovy) and what Jenkins would do is compared with mlstack.contract:
the trigger choice and its default, the Alertmanager label the webhook reads and the alert triggers
its filter lets through, the schedule's trigger, the stage names the steps run and the MLflow port.
No Jenkins controller runs here.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from mlstack import contract
from mlstack.config import REPO_ROOT
from tests.support.ct import notification
from tests.support.jenkins import casc
from tests.support.jenkins.harness import JenkinsfileRun, Scenario, run_jenkinsfile, run_seed_job

pytestmark = pytest.mark.integration

TOKEN = "vocabulary-test-token"


def _alert(trigger: str) -> Scenario:
    """Alertmanager's notification for an alert labelled with the contract's CT label = trigger."""
    return Scenario(
        f"alert {trigger}",
        trigger={
            "type": "webhook",
            "headers": {"Authorization": f"Bearer {TOKEN}"},
            "body": notification(trigger),
        },
    )


@pytest.fixture(scope="module")
def jenkinsfile() -> JenkinsfileRun:
    scenarios = [
        Scenario("cron", trigger={"type": "cron"}),
        Scenario(
            "everything",
            trigger={"type": "manual", "parameters": {"REQUIRE_APPROVAL": True}},
            input={"Approval": {"action": "proceed"}},
        ),
        Scenario("health checks fail", failing_stages=("Health checks",)),
        *(_alert(t) for t in contract.TRIGGERS),
    ]
    credentials = casc.string_credentials({contract.WEBHOOK_TOKEN_ENV: TOKEN})
    return run_jenkinsfile(scenarios, credentials=credentials)


@pytest.fixture(scope="module")
def seed_job() -> dict[str, Any]:
    (job,) = run_seed_job(casc.seed_script({}))
    return job


def _parameter(parameters: list[dict[str, Any]], name: str) -> dict[str, Any]:
    (found,) = [p for p in parameters if p["name"] == name]
    return found


def test_jenkinsfile_trigger_choice_is_the_contract(jenkinsfile: JenkinsfileRun) -> None:
    choice = _parameter(jenkinsfile.parameters, contract.JENKINS_TRIGGER_PARAMETER)
    assert tuple(choice["choices"]) == contract.TRIGGERS
    assert choice["defaultValue"] == contract.DEFAULT_TRIGGER  # a choice parameter defaults to its first


def test_seed_job_trigger_choice_is_the_contract(seed_job: dict[str, Any]) -> None:
    choice = _parameter(seed_job["parameters"], contract.JENKINS_TRIGGER_PARAMETER)
    assert tuple(choice["choices"]) == contract.TRIGGERS


def test_the_webhook_reads_the_ct_label_and_passes_alert_triggers(
    jenkinsfile: JenkinsfileRun, seed_job: dict[str, Any]
) -> None:
    """An alert labelled with each trigger: only the alert triggers start a build, named after it."""
    for trigger in contract.TRIGGERS:
        build = jenkinsfile.builds[f"alert {trigger}"]
        assert build.triggered == (trigger in contract.ALERT_TRIGGERS), (trigger, build.reason)
        if build.triggered:
            assert build.params[contract.JENKINS_TRIGGER_PARAMETER] == trigger
            assert {f"--trigger={trigger}"} == {
                a for c in build.commands for a in c.split() if a.startswith("--trigger=")
            }
    # The seed job declares the same webhook (and the other triggers), setting by setting.
    assert seed_job["triggers"] == jenkinsfile.triggers


def test_the_schedule_names_the_schedule_trigger(jenkinsfile: JenkinsfileRun) -> None:
    build = jenkinsfile.builds["cron"]
    assert build.params[contract.JENKINS_TRIGGER_PARAMETER] == contract.TRIGGER_SCHEDULE
    assert all(f"--trigger={contract.TRIGGER_SCHEDULE}" in c for c in build.commands if " stage " in c)


def test_jenkinsfile_stages_are_the_contract_stages_in_order(jenkinsfile: JenkinsfileRun) -> None:
    assert tuple(jenkinsfile.builds["everything"].cli_stages()) == contract.STAGES
    # `post` blocks re-run stages (redeploy, approval refused): only known ones.
    failed = jenkinsfile.builds["health checks fail"]
    for build in (failed, jenkinsfile.builds["everything"]):
        for step in build.sh_steps:
            assert set(build.cli_stages(step.section)) <= set(contract.STAGES)
    assert failed.cli_stages("post failure")


def test_mlflow_uri_default_uses_the_contract_port(
    jenkinsfile: JenkinsfileRun, seed_job: dict[str, Any]
) -> None:
    expected = f"http://{contract.MLFLOW}:{contract.CONTAINER_PORTS[contract.MLFLOW]}"
    assert _parameter(jenkinsfile.parameters, "MLFLOW_TRACKING_URI")["defaultValue"] == expected
    assert _parameter(seed_job["parameters"], "MLFLOW_TRACKING_URI")["defaultValue"] == expected


def test_casc_location_uses_the_jenkins_port() -> None:
    tree = yaml.safe_load((REPO_ROOT / "jenkins" / "casc.yaml").read_text())
    url = tree["unclassified"]["location"]["url"]
    assert re.search(rf":{contract.CONTAINER_PORTS[contract.JENKINS]}/\}}?$", url), url
