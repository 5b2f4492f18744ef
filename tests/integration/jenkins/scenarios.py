"""The Jenkins builds a user meets, and the stages each one must run (executed by harness.groovy).

Jenkins stage names are the Jenkinsfile's own (its `stage('...')` labels); the `mlstack stage` names
come from mlstack.stages.STAGES, the list the local runner runs in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mlstack.contract import (
    APPROVED_BY_ENV,
    JENKINS_TRIGGER_PARAMETER,
    STAGES,
    TRIGGER_ACCURACY,
    TRIGGER_DRIFT,
    TRIGGER_MANUAL,
    TRIGGER_PUSH,
    TRIGGER_SCHEDULE,
    Stage,
)
from tests.support.ct import notification
from tests.support.jenkins.harness import Build, Scenario, manual

MANUAL, PUSH, SCHEDULE, DRIFT, ACCURACY = (
    TRIGGER_MANUAL,
    TRIGGER_PUSH,
    TRIGGER_SCHEDULE,
    TRIGGER_DRIFT,
    TRIGGER_ACCURACY,
)
TRIGGER = JENKINS_TRIGGER_PARAMETER
APPROVER = APPROVED_BY_ENV
# `mlstack stage` names (typed Stage: mypy checks them against mlstack.contract).
BUILD: Stage = "build"
APPROVE: Stage = "approve"
HEALTHCHECK: Stage = "healthcheck"
GATE: Stage = "gate"
DEPLOY: Stage = "deploy"
# What the Jenkinsfile's "Continuous training" block runs.
TRAINING_STAGES: frozenset[Stage] = frozenset(
    {"validate-data", "train", "register", GATE, APPROVE, "promote"}
)

# The Jenkinsfile's stages in file order, parents before their children.
JENKINS_STAGES = [
    "Checkout",
    "Lint and unit tests",
    "Build images",
    "Start platform",
    "Continuous training",
    "Validate data",
    "Train and register",
    "Gate",
    "Approval",
    "Promote",
    "Rollback",
    "Release",
    "Deploy",
    "Health checks",
    "Smoke prediction",
    "Drift report",
]
TRAINING_BLOCK = {"Continuous training", "Validate data", "Train and register", "Gate", "Approval", "Promote"}
APPROVAL_STAGE = "Approval"
# The secret JCasC gives the credential `mlstack-webhook-token` here (MLSTACK_WEBHOOK_TOKEN).
WEBHOOK_TOKEN = "harness-webhook-token-0123456789"
ALWAYS = (("pipeline", "always"), ("pipeline", "cleanup"))


@dataclass(frozen=True)
class Expectation:
    """What a scenario's build must do."""

    trigger: str = MANUAL
    skipped: frozenset[str] = frozenset({APPROVAL_STAGE, "Rollback"})
    result: str = "SUCCESS"
    cli_skipped: frozenset[Stage] = frozenset({APPROVE})
    cli_stop_after: Stage | None = None  # the last `mlstack stage` a failure lets run
    statuses: dict[str, str] = field(default_factory=dict)  # stage -> status, where not SUCCESS/SKIPPED
    posts: tuple[tuple[str, str], ...] = ALWAYS
    post_cli: dict[str, list[str]] = field(default_factory=dict)  # "post <condition>" -> mlstack stages
    params: dict[str, object] = field(default_factory=dict)  # parameter values the build must see

    @property
    def ran(self) -> list[str]:
        return [s for s in JENKINS_STAGES if s not in self.skipped]

    @property
    def cli(self) -> list[str]:
        names: list[str] = [s for s in STAGES if s not in self.cli_skipped]
        return names[: names.index(self.cli_stop_after) + 1] if self.cli_stop_after else names


def _alert(
    trigger: str | None, status: str = "firing", token: str | None = WEBHOOK_TOKEN
) -> dict[str, object]:
    """The request Alertmanager's retrain-webhook receiver sends (Bearer token from credentials_file)."""
    headers = {"Content-Type": "application/json", "User-Agent": "Alertmanager/0.27.0"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return {"type": "webhook", "headers": headers, "body": notification(trigger, status)}


def _approval(action: str) -> dict[str, dict[str, str]]:
    return {APPROVAL_STAGE: {"action": action, "submitter": "alice"}}


_NOT_PROMOTED = {
    "Promote",
    "Rollback",
    "Release",
    "Deploy",
    "Health checks",
    "Smoke prediction",
    "Drift report",
}
_ABORTED = Expectation(
    skipped=frozenset(_NOT_PROMOTED),
    result="ABORTED",
    cli_skipped=frozenset(),
    cli_stop_after=GATE,
    statuses={APPROVAL_STAGE: "ABORTED", "Continuous training": "ABORTED"},
    posts=(("pipeline", "always"), ("pipeline", "aborted"), ("pipeline", "cleanup")),
    post_cli={"post aborted": [APPROVE]},
    params={"REQUIRE_APPROVAL": True},
)

SCENARIOS: dict[str, tuple[Scenario, Expectation]] = {
    "manual defaults": (manual("manual defaults"), Expectation()),
    "GitHub push": (
        Scenario("GitHub push", trigger={"type": "push", "pusher": "octocat"}),
        Expectation(trigger=PUSH, params={TRIGGER: MANUAL}),
    ),
    "SCM poll": (Scenario("SCM poll", trigger={"type": "poll"}), Expectation(trigger=PUSH)),
    "cron": (
        Scenario("cron", trigger={"type": "cron"}),
        Expectation(trigger=SCHEDULE, params={TRIGGER: SCHEDULE}),
    ),
    "Alertmanager drift": (
        Scenario("Alertmanager drift", trigger=_alert(DRIFT)),
        Expectation(trigger=DRIFT, params={TRIGGER: DRIFT}),
    ),
    "Alertmanager accuracy": (
        Scenario("Alertmanager accuracy", trigger=_alert(ACCURACY)),
        Expectation(trigger=ACCURACY, params={TRIGGER: ACCURACY}),
    ),
    "approval given": (
        Scenario(
            "approval given",
            trigger={"type": "manual", "parameters": {"REQUIRE_APPROVAL": True}},
            input=_approval("proceed"),
        ),
        Expectation(
            skipped=frozenset({"Rollback"}), cli_skipped=frozenset(), params={"REQUIRE_APPROVAL": True}
        ),
    ),
    "approval aborted": (
        Scenario(
            "approval aborted",
            trigger={"type": "manual", "parameters": {"REQUIRE_APPROVAL": True}},
            input=_approval("abort"),
        ),
        _ABORTED,
    ),
    "approval timed out": (
        Scenario(
            "approval timed out",
            trigger={"type": "manual", "parameters": {"REQUIRE_APPROVAL": True}},
            input=_approval("timeout"),
        ),
        _ABORTED,
    ),
    "rollback": (
        manual("rollback", ROLLBACK_TO_VERSION="3"),
        Expectation(
            skipped=frozenset(TRAINING_BLOCK),
            cli_skipped=frozenset(TRAINING_STAGES),
            params={"ROLLBACK_TO_VERSION": "3"},
        ),
    ),
    "skip training": (
        manual("skip training", SKIP_TRAINING=True),
        Expectation(
            skipped=frozenset({*TRAINING_BLOCK, "Rollback"}),
            cli_skipped=frozenset(TRAINING_STAGES),
            params={"SKIP_TRAINING": True},
        ),
    ),
    "no image rebuild": (
        manual("no image rebuild", REBUILD_IMAGES=False),
        Expectation(
            skipped=frozenset({"Build images", APPROVAL_STAGE, "Rollback"}),
            cli_skipped=frozenset({BUILD, APPROVE}),
            params={"REBUILD_IMAGES": False},
        ),
    ),
    "health checks fail": (
        Scenario("health checks fail", failing_stages=("Health checks",)),
        Expectation(
            skipped=frozenset({APPROVAL_STAGE, "Rollback", "Smoke prediction", "Drift report"}),
            result="FAILURE",
            cli_stop_after=HEALTHCHECK,
            statuses={"Health checks": "FAILURE", "Release": "FAILURE"},
            posts=(("Release", "failure"), *ALWAYS),
            post_cli={"post failure": [DEPLOY]},
        ),
    ),
    "drift report fails": (
        Scenario("drift report fails", failing_stages=("Drift report",)),
        Expectation(result="UNSTABLE", statuses={"Drift report": "FAILURE"}),
    ),
}

# Webhook and trigger requests that must not start a build, with the reason the harness gives.
REFUSED: dict[str, tuple[Scenario, str]] = {
    "alert resolved": (
        Scenario("alert resolved", trigger=_alert(DRIFT, status="resolved")),
        "does not match",
    ),
    "alert without ct_trigger": (
        Scenario("alert without ct_trigger", trigger=_alert(None)),
        "does not match",
    ),
    "alert with an injected label": (
        Scenario("alert with an injected label", trigger=_alert("drift; rm -rf /")),
        "does not match",
    ),
    "alert with the wrong token": (
        Scenario("alert with the wrong token", trigger=_alert(DRIFT, token="not-the-token")),
        "token",
    ),
    "alert without a token": (Scenario("alert without a token", trigger=_alert(DRIFT, token=None)), "token"),
}

# A value for each parameter that differs from its default and that the CLI accepts: a build with it
# must run something different (a command line or a stage). A new parameter needs an entry here.
ALTERNATIVES: dict[str, str | bool] = {
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
    TRIGGER: DRIFT,
    "REQUIRE_APPROVAL": True,
    "RUNTIME": "k8s",
}


def flipped(name: str) -> Scenario:
    """A manual build with one parameter changed (approval answered, in case it is asked for)."""
    return Scenario(
        f"flip {name}",
        trigger={"type": "manual", "parameters": {name: ALTERNATIVES[name]}},
        input=_approval("proceed"),
    )


EVERYTHING_FLIPPED = Scenario(
    "every parameter changed",
    trigger={"type": "manual", "parameters": ALTERNATIVES},
    input=_approval("proceed"),
)
# Whitespace around values: the string parameters are declared with trim: true.
PADDED = manual("padded values", GATE_FLOOR=" 0.9 ", MODELS=" svc,knn ")


def all_scenarios() -> list[Scenario]:
    return [
        *(s for s, _ in SCENARIOS.values()),
        *(s for s, _ in REFUSED.values()),
        *(flipped(name) for name in ALTERNATIVES),
        EVERYTHING_FLIPPED,
        PADDED,
    ]


def _same(what: str, got: object, want: object, account: str) -> None:
    if got != want:
        raise AssertionError(f"{what}: expected {want!r}\n{' ' * len(what)}       got {got!r}\n{account}")


def check(build: Build, expected: Expectation) -> None:
    """Everything a scenario promises; raises AssertionError with the difference and the build's account."""
    account = build.summary()
    assert build.triggered, f"{build.name}: not triggered ({build.reason})"
    _same("undefined references", build.undefined, [], account)
    _same("stages run", build.ran, expected.ran, account)
    _same("stages skipped", build.skipped, [s for s in JENKINS_STAGES if s in expected.skipped], account)
    _same("build result", build.result, expected.result, account)
    _same("mlstack stages", build.cli_stages(), expected.cli, account)
    for stage in expected.ran:
        _same(
            f"{stage} status", build.stage(stage)["status"], expected.statuses.get(stage, "SUCCESS"), account
        )
    _same("post conditions", build.posts, list(expected.posts), account)
    for section, names in expected.post_cli.items():
        _same(f"mlstack stages in {section}", build.cli_stages(section), names, account)
    triggers = {a.split("=", 1)[1] for c in build.commands for a in c.split() if a.startswith("--trigger=")}
    _same("--trigger", triggers, {expected.trigger}, account)
    for name, value in expected.params.items():
        _same(f"params.{name}", build.params[name], value, account)
