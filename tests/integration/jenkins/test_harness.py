"""The harness itself: small Jenkinsfiles whose Jenkins behaviour is known from Declarative's sources.

Each case names the upstream behaviour it reproduces (pipeline-model-definition's ModelInterpreter,
BuildCondition and *ConditionalScript classes, workflow-basic-steps' CatchErrorStep). If the harness
drifted from them, the scenario tests of test_jenkinsfile.py would prove nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.jenkins.harness import Build, Scenario, run_jenkinsfile, run_seed_job

pytestmark = pytest.mark.integration

PARAMS = """
    parameters {
        string(name: 'P', defaultValue: 'x', trim: true, description: 'a string')
        booleanParam(name: 'FLAG', defaultValue: false, description: 'a flag')
    }
"""

CASES: dict[str, str] = {
    # `equals` inside `when` is Declarative's EqualsConditional, not Closure.equals.
    "when equals": """
pipeline {
    agent any
    options { skipDefaultCheckout() }
    PARAMS
    stages {
        stage('equal') {
            when { equals expected: 'x', actual: params.P }
            steps { sh 'make equal' }
        }
        stage('not equal') {
            when { not { equals expected: 'x', actual: params.P } }
            steps { sh 'make differ' }
        }
        stage('all') {
            when { allOf { expression { params.FLAG }; environment name: 'P', value: 'x' } }
            steps { sh 'make all' }
        }
        stage('any') {
            when { anyOf { expression { params.FLAG }; equals expected: 'x', actual: params.P } }
            steps { sh 'make any' }
        }
    }
}
""",
    # catchError(stageResult: FAILURE) fails the stage for its own post, the build is only UNSTABLE.
    "catchError": """
pipeline {
    agent any
    options { skipDefaultCheckout() }
    stages {
        stage('report') {
            steps { catchError(buildResult: 'UNSTABLE', stageResult: 'FAILURE') { sh 'docker fail' } }
            post { failure { sh 'make stage-failure' } }
        }
        stage('after') { steps { sh 'make after' } }
    }
    post {
        cleanup { sh 'make cleanup' }
        failure { sh 'make failure' }
        unstable { sh 'make unstable' }
        always { sh 'make always' }
    }
}
""",
    # A failure skips every later stage; post conditions run in BuildCondition order.
    "failure": """
pipeline {
    agent any
    stages {
        stage('one') { steps { sh 'make one' } }
        stage('two') { steps { sh 'make two && curl http://example.invalid' } }
        stage('three') { steps { sh 'make three' } }
    }
    post {
        cleanup { sh 'make cleanup' }
        success { sh 'make success' }
        failure { sh 'make failure' }
        always { sh 'make always' }
    }
}
""",
    # beforeInput: a false condition means nobody is asked.
    "beforeInput": """
pipeline {
    agent any
    options { skipDefaultCheckout() }
    PARAMS
    stages {
        stage('ask') {
            when { beforeInput true; expression { params.FLAG } }
            input { message 'go?' }
            steps { sh 'make asked' }
        }
    }
}
""",
    # Shell expansion and environment: GStrings in Groovy, $VARS in /bin/sh, bare names in Groovy.
    "environment": """
pipeline {
    agent any
    options { skipDefaultCheckout() }
    PARAMS
    environment {
        A = "a-${params.P}"
        B = "${A}-b ${params.FLAG ? 'on' : 'off'}"
    }
    stages {
        stage('expand') {
            environment { C = "${env.BUILD_TAG}" }
            steps {
                sh 'make "$A" $B "$C" "$P"'
                sh "make ${B}"
                echo "bare ${A}"
            }
        }
    }
}
""",
    "undefined parameter": """
pipeline {
    agent any
    options { skipDefaultCheckout() }
    PARAMS
    stages {
        stage('typo') { when { expression { params.FLAGG } }; steps { sh 'make never' } }
    }
}
""",
}
# Files the harness must refuse rather than guess about.
REFUSED = {
    "unknown step": "pipeline { agent any\n stages { stage('s') { steps { writeFile file: 'x' } } } }",
    "misspelt directive": "pipeline { agent any\n stages { stage('s') { step { sh 'make' } } } }",
    "unknown condition": "pipeline { agent any\n stages { stage('s') {\n"
    "  when { branch 'main' }; steps { sh 'make' } } } }",
}


# Stages whose commands fail, per case.
FAILING = {"catchError": ("report",)}


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Build]:
    """Every case in one harness run (one JVM), plus the cases run again with other parameters."""
    folder = tmp_path_factory.mktemp("jenkinsfiles")
    files = {}
    for name, text in CASES.items():
        files[name] = folder / name.replace(" ", "-")
        files[name].write_text(text.replace("PARAMS", PARAMS))
    scenarios = [Scenario(n, jenkinsfile=p, failing_stages=FAILING.get(n, ())) for n, p in files.items()]
    scenarios += [
        Scenario(
            "when equals, P=y FLAG",
            trigger={"type": "manual", "parameters": {"P": "y", "FLAG": True}},
            jenkinsfile=files["when equals"],
        ),
        Scenario(
            "environment, FLAG",
            trigger={"type": "manual", "parameters": {"FLAG": True}},
            jenkinsfile=files["environment"],
        ),
    ]
    return dict(run_jenkinsfile(scenarios, jenkinsfile=files["failure"]).builds)


def test_when_equals_is_the_declarative_condition(builds: dict[str, Build]) -> None:
    default = builds["when equals"]
    assert default.ran == ["equal", "any"] and default.skipped == ["not equal", "all"], default.summary()
    changed = builds["when equals, P=y FLAG"]
    assert changed.ran == ["not equal", "any"] and changed.skipped == ["equal", "all"], changed.summary()
    assert changed.stage("all")["when"] == [
        {"condition": "allOf(expression, environment(P == x))", "value": False}
    ]


def test_catch_error_makes_the_stage_fail_and_the_build_unstable(builds: dict[str, Build]) -> None:
    build = builds["catchError"]
    assert build.result == "UNSTABLE" and build.ran == ["report", "after"], build.summary()
    assert build.stage("report")["status"] == "FAILURE"
    # Stage post sees the stage's FAILURE; pipeline post sees UNSTABLE, in always, unstable, cleanup order.
    assert build.posts == [
        ("report", "failure"),
        ("pipeline", "always"),
        ("pipeline", "unstable"),
        ("pipeline", "cleanup"),
    ]


def test_a_failure_skips_later_stages_and_runs_failure_posts_in_order(builds: dict[str, Build]) -> None:
    build = builds["failure"]
    assert build.result == "FAILURE" and build.ran == ["one", "two"], build.summary()
    assert build.skipped == ["three"]
    assert build.stage("three")["status"] == "SKIPPED (earlier failure)"
    assert build.posts == [("pipeline", "always"), ("pipeline", "failure"), ("pipeline", "cleanup")]
    # The script ran under `sh -xe`: make ran, then curl is no program the build may call (127).
    (two,) = [s for s in build.sh_steps if s.stage == "two"]
    assert two.argv == (("make", "two"),) and two.exit == 127
    assert build.error == "script returned exit code 127"
    # No skipDefaultCheckout: Declarative checks the job's SCM out first.
    assert [s["stage"] for s in build.steps if s["step"] == "checkout"] == ["Declarative: Checkout SCM"]


def test_before_input_skips_without_asking(builds: dict[str, Build]) -> None:
    build = builds["beforeInput"]
    assert build.skipped == ["ask"] and build.inputs == [], build.summary()


def test_environment_gstrings_and_shell_expansion(builds: dict[str, Build]) -> None:
    build = builds["environment, FLAG"]
    first, second = build.sh_steps
    assert first.argv == (("make", "a-x", "a-x-b", "on", "jenkins-mlstack-42", "x"),)
    assert second.script == "make a-x-b on" and second.argv == (("make", "a-x-b", "on"),)
    assert [s["message"] for s in build.steps if s["step"] == "echo"] == ["bare a-x"]


def test_a_parameter_nobody_declared_is_reported(builds: dict[str, Build]) -> None:
    build = builds["undefined parameter"]
    assert build.undefined == ["params.FLAGG"] and build.skipped == ["typo"]


@pytest.mark.parametrize("name", list(REFUSED))
def test_the_harness_refuses_what_it_does_not_model(tmp_path: Path, name: str) -> None:
    path = tmp_path / "Jenkinsfile"
    path.write_text(REFUSED[name])
    with pytest.raises(AssertionError, match="the harness refused"):
        run_jenkinsfile([Scenario(name)], jenkinsfile=path)


def test_the_job_dsl_contexts_refuse_what_job_dsl_would_refuse() -> None:
    """Unknown methods, wrong argument types and missing required options fail, as in Job DSL."""
    with pytest.raises(AssertionError, match="no method scmpoll"):
        run_seed_job(
            "pipelineJob('x') { properties { pipelineTriggers { triggers {\n"
            "    pollSCM { scmpoll('H * * * *') } } } } }"
        )
    with pytest.raises(AssertionError, match="must be Boolean"):
        run_seed_job("pipelineJob('x') { parameters { booleanParam('B', 'false', 'd') } }")
    with pytest.raises(AssertionError, match="required"):
        run_seed_job(
            "pipelineJob('x') { properties { pipelineTriggers { triggers { parameterizedCron { } } } } }"
        )
