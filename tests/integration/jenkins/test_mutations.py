"""The scenario tests can fail: mutated copies of the real Jenkinsfile must break a scenario.

Each mutation is applied to a temporary copy; the scenario's own check (scenarios.check, the one
test_jenkinsfile.py uses) must raise, and for a misspelt command the real CLI must refuse it too.
The failure text is printed: `pytest -s` shows what a reviewer would see.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.integration.jenkins import scenarios as sc
from tests.support.jenkins.cli import dry_run
from tests.support.jenkins.harness import CLI_PATH, JENKINSFILE, run_jenkinsfile

pytestmark = pytest.mark.integration

# name -> (text in the Jenkinsfile, its replacement, the scenario that must notice)
MUTATIONS = {
    "misspelt stage command": (
        "stage healthcheck $MLSTACK_ARGS",
        "stage healthchek $MLSTACK_ARGS",
        "manual defaults",
    ),
    "inverted when": (
        "when { expression { params.REBUILD_IMAGES } }",
        "when { expression { !params.REBUILD_IMAGES } }",
        "manual defaults",
    ),
    "misspelt parameter in a when": (
        "expression { params.REQUIRE_APPROVAL }",
        "expression { params.REQUIRE_APPROVALS }",
        "approval given",
    ),
    "rollback condition without not": (
        "when { not { equals expected: '', actual: params.ROLLBACK_TO_VERSION } }",
        "when { equals expected: '', actual: params.ROLLBACK_TO_VERSION }",
        "rollback",
    ),
}


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_a_mutated_jenkinsfile_fails_its_scenario(tmp_path: Path, name: str) -> None:
    original, replacement, scenario_name = MUTATIONS[name]
    text = JENKINSFILE.read_text()
    assert text.count(original) == 1, f"the Jenkinsfile no longer contains {original!r}: update this mutation"
    mutated = tmp_path / "Jenkinsfile"
    mutated.write_text(text.replace(original, replacement))
    scenario, expected = sc.SCENARIOS[scenario_name]
    credentials = {"mlstack-webhook-token": sc.WEBHOOK_TOKEN}
    build = run_jenkinsfile([scenario], jenkinsfile=mutated, credentials=credentials).builds[scenario_name]
    with pytest.raises(AssertionError) as caught:
        sc.check(build, expected)
    print(f"\n--- mutation {name!r}: scenario {scenario_name!r} fails:\n{caught.value}")
    if "command" in name:
        refused = []
        for step in build.sh_steps:
            for argv in step.argv:
                if argv[0] == CLI_PATH:
                    code, output = dry_run(argv, step.env)
                    if code != 0:
                        refused.append(" ".join(re.sub(r"[│╭╮╰╯─]", " ", output).split()))
        assert refused, "the real CLI accepted the misspelt command"
        print(f"--- and the real CLI refuses it: {refused}")
