"""The seed job of jenkins/casc.yaml, executed as Job DSL (harness.groovy), against the Jenkinsfile.

Jenkins learns a Jenkinsfile's parameters and triggers only by running it, and JCasC re-applies the
seed job at every start: the seed must declare exactly what the Jenkinsfile declares, or a restarted
Jenkins ignores the webhook and the schedule until someone builds by hand. Both files are executed
and their declarations compared as Jenkins stores them.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.jenkins import casc
from tests.support.jenkins.harness import JenkinsfileRun, run_seed_job

pytestmark = pytest.mark.integration

# Job DSL's stringParam() cannot set `trim`: until the first build applies the Jenkinsfile's
# `parameters` (trim: true), a seeded string parameter keeps surrounding spaces. docs/jenkins.md says so.
NOT_COMPARED = {"trim"}


@pytest.fixture(scope="module")
def seeded() -> dict[str, Any]:
    """The job the seed script defines, with JCasC's defaults for the repository variables."""
    (job,) = run_seed_job(casc.seed_script({}))
    return job


def _comparable(parameters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in p.items() if k not in NOT_COMPARED} for p in parameters]


def test_seed_job_is_the_pipeline_job_of_the_repository(seeded: dict[str, Any]) -> None:
    assert seeded["type"] == "pipelineJob" and seeded["name"] == "mlstack"
    assert seeded["definition"] == {
        "type": "cpsScm",
        "scriptPath": "Jenkinsfile",
        "lightweight": True,
        "git": {
            "remotes": [{"url": "file:///workspace/mlstack", "credentials": None}],
            "branches": ["*/main"],
        },
    }


def test_seed_job_follows_the_repository_variables() -> None:
    env = {"MLSTACK_REPO_URL": "https://github.com/example/mlstack.git", "MLSTACK_REPO_BRANCH": "release"}
    (job,) = run_seed_job(casc.seed_script(env))
    assert job["definition"]["git"]["remotes"][0]["url"] == env["MLSTACK_REPO_URL"]
    assert job["definition"]["git"]["branches"] == ["*/release"]


def test_seed_job_parameters_equal_the_jenkinsfiles(
    jenkins_run: JenkinsfileRun, seeded: dict[str, Any]
) -> None:
    """Names, types, defaults, choices and descriptions, in order."""
    assert _comparable(seeded["parameters"]) == _comparable(jenkins_run.parameters)
    assert len(seeded["parameters"]) == len(jenkins_run.parameters) >= 13


def test_seed_job_triggers_equal_the_jenkinsfiles(
    jenkins_run: JenkinsfileRun, seeded: dict[str, Any]
) -> None:
    """Push hook, polling, the parameterized schedule and the Alertmanager webhook, setting by setting."""
    assert seeded["triggers"] == jenkins_run.triggers
    classes = [t["class"].rsplit(".", 1)[-1] for t in seeded["triggers"]]
    assert classes == ["GitHubPushTrigger", "SCMTrigger", "ParameterizedTimerTrigger", "GenericTrigger"]


def test_the_comparison_sees_a_difference(jenkins_run: JenkinsfileRun) -> None:
    """A seed job one choice short, or with another schedule, is told apart."""
    script = casc.seed_script({})
    (fewer,) = run_seed_job(script.replace(", 'accuracy']", "]", 1))
    assert _comparable(fewer["parameters"]) != _comparable(jenkins_run.parameters)
    (later,) = run_seed_job(script.replace("H 3 * * *", "H 4 * * *", 1))
    assert later["triggers"] != jenkins_run.triggers
