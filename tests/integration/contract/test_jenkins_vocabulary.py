"""The Jenkinsfile and the seed job in jenkins/casc.yaml speak the contract's vocabulary.

Neither can import Python, so Groovy evaluates each (tests/support/groovy_dsl.py records every DSL
call) and the values Jenkins would see are compared with mlstack.contract: the trigger choice and its
default, the Alertmanager label the webhook reads, the alert triggers its filter lets through, the
schedule's trigger, the stage names the steps run and the MLflow port. No Jenkins controller runs here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlstack import contract
from mlstack.config import REPO_ROOT
from tests.support.groovy_dsl import Call, find, record

pytestmark = pytest.mark.integration

CLI = ".venv/bin/mlstack"


@pytest.fixture(scope="module")
def jenkinsfile() -> list[Call]:
    return record(REPO_ROOT / "Jenkinsfile")


@pytest.fixture(scope="module")
def seed_job(tmp_path_factory: pytest.TempPathFactory) -> list[Call]:
    (job,) = yaml.safe_load((REPO_ROOT / "jenkins" / "casc.yaml").read_text())["jobs"]
    path: Path = tmp_path_factory.mktemp("casc") / "seed-job.groovy"
    path.write_text(job["script"])
    return record(path)


def _named(calls: list[Call], kind: str, name: str) -> Call:
    """The parameter `kind(name: NAME, ...)` (declarative) or `kind('NAME', ...)` (Job DSL)."""
    for call in find(calls, kind):
        first: Any = call.args[0] if call.args else None
        if (isinstance(first, dict) and first.get("name") == name) or first == name:
            return call
    raise AssertionError(f"no {kind} parameter {name}")


def _filter_lets_through(expression: str, text: str, trigger: str) -> bool:
    return (
        re.search(expression, text.replace("$ALERT_STATUS", "firing").replace("$TRIGGER_REASON", trigger))
        is not None
    )


def test_jenkinsfile_trigger_choice_is_the_contract(jenkinsfile: list[Call]) -> None:
    choice = _named(jenkinsfile, "choice", contract.JENKINS_TRIGGER_PARAMETER).args[0]
    assert tuple(choice["choices"]) == contract.TRIGGERS
    assert choice["choices"][0] == contract.DEFAULT_TRIGGER  # a choice parameter defaults to its first


def test_seed_job_trigger_choice_is_the_contract(seed_job: list[Call]) -> None:
    _, choices, _ = _named(seed_job, "choiceParam", contract.JENKINS_TRIGGER_PARAMETER).args
    assert tuple(choices) == contract.TRIGGERS


def test_jenkinsfile_webhook_reads_the_ct_label_and_passes_alert_triggers(jenkinsfile: list[Call]) -> None:
    (generic,) = find(jenkinsfile, "GenericTrigger")
    settings = generic.args[0]
    variables = {v["key"]: v["value"] for v in settings["genericVariables"]}
    assert variables[contract.JENKINS_TRIGGER_PARAMETER] == f"$.commonLabels.{contract.CT_LABEL}"
    for trigger in contract.TRIGGERS:
        passes = _filter_lets_through(
            settings["regexpFilterExpression"], settings["regexpFilterText"], trigger
        )
        assert passes == (trigger in contract.ALERT_TRIGGERS), trigger


def test_seed_job_webhook_reads_the_ct_label_and_passes_alert_triggers(seed_job: list[Call]) -> None:
    variables = {}
    for variable in find(seed_job, "genericVariable"):
        fields = {c.name: c.args[0] for c in variable.children}
        variables[fields["key"]] = fields["value"]
    assert variables[contract.JENKINS_TRIGGER_PARAMETER] == f"$.commonLabels.{contract.CT_LABEL}"
    (expression,) = find(seed_job, "regexpFilterExpression")
    (text,) = find(seed_job, "regexpFilterText")
    for trigger in contract.TRIGGERS:
        passes = _filter_lets_through(expression.args[0], text.args[0], trigger)
        assert passes == (trigger in contract.ALERT_TRIGGERS), trigger


def test_the_schedule_names_the_schedule_trigger(jenkinsfile: list[Call], seed_job: list[Call]) -> None:
    (cron,) = find(jenkinsfile, "parameterizedCron")
    (spec,) = find(seed_job, "parameterizedSpecification")
    for line in (cron.args[0], spec.args[0]):
        assignment = line.split("%", 1)[1]
        assert assignment == f"{contract.JENKINS_TRIGGER_PARAMETER}={contract.TRIGGER_SCHEDULE}"


def _steps_outside_post(call: Call) -> list[Call]:
    """The `sh` steps under `call`, in file order, leaving out `post { ... }` blocks."""
    if call.name == "post":
        return []
    if call.name == "sh":
        return [call]
    return [step for child in call.children for step in _steps_outside_post(child)]


def test_jenkinsfile_stages_are_the_contract_stages_in_order(jenkinsfile: list[Call]) -> None:
    (pipeline,) = find(jenkinsfile, "pipeline")
    stages = next(c for c in pipeline.children if c.name == "stages")
    ran: list[str] = []
    for step in _steps_outside_post(stages):
        words = str(step.args[0]).split()
        if words[:2] == [CLI, "stage"]:
            ran += [w for w in words[2:] if not w.startswith(("-", "$"))]
    assert tuple(ran) == contract.STAGES
    # `post` blocks re-run stages (redeploy, approval refused): only known ones.
    for step in find(jenkinsfile, "sh"):
        words = str(step.args[0]).split()
        if words[:2] == [CLI, "stage"]:
            assert {w for w in words[2:] if not w.startswith(("-", "$", "|"))} <= set(contract.STAGES) | {
                "true"
            }


def test_mlflow_uri_default_uses_the_contract_port(jenkinsfile: list[Call], seed_job: list[Call]) -> None:
    expected = f"http://{contract.MLFLOW}:{contract.CONTAINER_PORTS[contract.MLFLOW]}"
    declared = _named(jenkinsfile, "string", "MLFLOW_TRACKING_URI").args[0]
    assert declared["defaultValue"] == expected
    assert _named(seed_job, "stringParam", "MLFLOW_TRACKING_URI").args[1] == expected


def test_casc_location_uses_the_jenkins_port() -> None:
    casc = yaml.safe_load((REPO_ROOT / "jenkins" / "casc.yaml").read_text())
    url = casc["unclassified"]["location"]["url"]
    assert re.search(rf":{contract.CONTAINER_PORTS[contract.JENKINS]}/\}}?$", url), url
