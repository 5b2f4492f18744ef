"""One harness run of every Jenkins scenario per session (a JVM start costs seconds)."""

from __future__ import annotations

import pytest

from tests.integration.jenkins import scenarios
from tests.support.jenkins import casc
from tests.support.jenkins.harness import JenkinsfileRun, run_jenkinsfile


@pytest.fixture(scope="session")
def jenkins_run() -> JenkinsfileRun:
    """Every scenario of scenarios.py, executed against the repository's Jenkinsfile.

    The webhook credential is the one jenkins/casc.yaml defines, resolved as JCasC would resolve it
    with MLSTACK_WEBHOOK_TOKEN set.
    """
    credentials = casc.string_credentials({"MLSTACK_WEBHOOK_TOKEN": scenarios.WEBHOOK_TOKEN})
    return run_jenkinsfile(scenarios.all_scenarios(), credentials=credentials)
