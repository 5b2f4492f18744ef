"""The project's vocabulary, defined once: triggers, stages, registry tags, artifact paths, env vars, ports.

Every other module imports these names instead of writing the strings. Files that cannot import Python
(the Jenkinsfile, `jenkins/casc.yaml`, the Dockerfiles, `docker-compose.yaml`, `mlstack.yaml`) repeat
some of them; `tests/unit/contract/` checks each of those against this module.

This module imports nothing from mlstack, so anything (the CLI's dry runs, the api, the exporter, tests)
can use it without pulling in MLflow or scikit-learn.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final, Literal, get_args

# --------------------------------------------------------------------------- triggers

TriggerReason = Literal["manual", "push", "schedule", "drift", "accuracy"]
"""Why a pipeline run happens: the Jenkins TRIGGER_REASON choice and `mlstack run --trigger`."""
TRIGGERS: Final[tuple[TriggerReason, ...]] = get_args(TriggerReason)
TRIGGER_MANUAL: Final[TriggerReason] = "manual"
TRIGGER_PUSH: Final[TriggerReason] = "push"
TRIGGER_SCHEDULE: Final[TriggerReason] = "schedule"
TRIGGER_DRIFT: Final[TriggerReason] = "drift"
TRIGGER_ACCURACY: Final[TriggerReason] = "accuracy"
DEFAULT_TRIGGER: Final[TriggerReason] = TRIGGER_MANUAL
# Triggers raised by a Prometheus alert (the `ct_trigger` label's values): cooldown applies to them.
ALERT_TRIGGERS: Final[tuple[TriggerReason, ...]] = (TRIGGER_DRIFT, TRIGGER_ACCURACY)
# When several triggers wait at once, the most urgent one names the run: labels beat distributions.
TRIGGER_PRIORITY: Final[Mapping[TriggerReason, int]] = {
    TRIGGER_ACCURACY: 2,
    TRIGGER_DRIFT: 1,
    TRIGGER_SCHEDULE: 0,
    TRIGGER_PUSH: 0,
    TRIGGER_MANUAL: 0,
}
# The alert label whose value is the trigger (Alertmanager routes on it, Jenkins reads it).
CT_LABEL: Final = "ct_trigger"
# The Jenkins build parameter that carries the trigger.
JENKINS_TRIGGER_PARAMETER: Final = "TRIGGER_REASON"


def trigger_priority(trigger: str) -> int:
    """How urgent a trigger is (unknown names: 0)."""
    return next((priority for name, priority in TRIGGER_PRIORITY.items() if name == trigger), 0)


def most_urgent(triggers: Iterable[str]) -> TriggerReason | None:
    """The highest-priority known trigger among `triggers` (ties: the earlier one in TRIGGERS)."""
    known = [t for t in TRIGGERS if t in set(triggers)]
    if not known:
        return None
    return max(known, key=trigger_priority)


# --------------------------------------------------------------------------- stages

Stage = Literal[
    "build",
    "platform",
    "validate-data",
    "train",
    "register",
    "gate",
    "approve",
    "promote",
    "deploy",
    "healthcheck",
    "smoke",
    "drift-report",
]
STAGES: Final[tuple[Stage, ...]] = get_args(Stage)
"""The pipeline's stages in order: `mlstack run` runs them all, the Jenkinsfile one call each."""
# Stages after which a failure rolls the champion back, if this pipeline moved it.
POST_PROMOTE_STAGES: Final[frozenset[Stage]] = frozenset({"deploy", "healthcheck", "smoke"})


def stage_method(stage: Stage) -> str:
    """The Python identifier of a stage (`validate-data` -> `validate_data`)."""
    return stage.replace("-", "_")


# --------------------------------------------------------------------------- registry tags

# Registered-model tags: one per alias move, `alias_history.000001` = {"alias", "from", "to", ...}.
ALIAS_HISTORY_TAG_PREFIX: Final = "alias_history."
# Lineage tags, on every candidate run, every registered version and the pipeline run.
TAG_GIT_SHA: Final = "git_sha"
TAG_DATA_HASH: Final = "data_hash"
# A hash of the config keys that shape the model (data and training sections): with an equal
# data hash, an equal config hash means "the same inputs" (the gate keeps the champion on a tie).
TAG_CONFIG_HASH: Final = "config_hash"
TAG_PIPELINE_ID: Final = "pipeline_id"
TAG_BUILD_ID: Final = "build_id"
TAG_TRIGGER: Final = "trigger"
# The candidate's name (run and version tag).
TAG_CANDIDATE: Final = "candidate"
TAG_PRIMARY_METRIC: Final = "primary_metric"
# ONNX export: whether the ONNX model predicts like the sklearn one, and where it is.
TAG_ONNX_PARITY: Final = "onnx_parity"
TAG_ONNX_DETAIL: Final = "onnx_detail"
TAG_ONNX_ARTIFACT: Final = "onnx_artifact"
OnnxParity = Literal["passed", "failed", "skipped"]
ONNX_PASSED: Final[OnnxParity] = "passed"
ONNX_FAILED: Final[OnnxParity] = "failed"
ONNX_SKIPPED: Final[OnnxParity] = "skipped"
# The gate's verdict on a version, and whether it was overridden.
TAG_GATE: Final = "gate"
GATE_PASSED: Final = "passed"
GATE_FAILED: Final = "failed"
# A tie on the champion's own inputs: this version reproduces the champion, which stays.
GATE_SAME_AS_CHAMPION: Final = "same-as-champion"
TAG_GATE_FORCED: Final = "gate_forced"
# The gate's verdict on the best candidate's run.
RUN_TAG_GATE_DECISION: Final = "gate.decision"
RUN_TAG_GATE_REASON: Final = "gate.reason"
RUN_TAG_GATE_FORCED_BY: Final = "gate.forced_by"
RUN_METRIC_GATE_CHALLENGER: Final = "gate.challenger_score"
RUN_METRIC_GATE_CHAMPION: Final = "gate.champion_score"
# Quarantine: "pending", then "approved:<actor>" or "rejected:<actor>".
TAG_APPROVAL: Final = "approval"
APPROVAL_PENDING: Final = "pending"
APPROVED: Final = "approved"
REJECTED: Final = "rejected"
# The pipeline run's own tags (experiment `<experiment>-pipeline`).
TAG_STATUS: Final = "status"
TAG_ERROR: Final = "error"
# The experiment that gets one run per pipeline execution: `<project.experiment>-pipeline`.
PIPELINE_EXPERIMENT_SUFFIX: Final = "-pipeline"
# Dataset composition, on candidate runs: `data.base_rows`, `data.new_rows`, ...
DATA_TAG_PREFIX: Final = "data."
# Feedback used and quarantined by the run: composition keys, logged as tags (`data.` prefix) and as
# metrics of the same name on every candidate run.
COMPOSITION_FEEDBACK_USED: Final = "feedback_rows"
COMPOSITION_FEEDBACK_EXCLUDED: Final = "feedback_excluded"
# Usable feedback rows that add nothing: copies of rows already in the data (base rows or each other).
COMPOSITION_FEEDBACK_DUPLICATES: Final = "feedback_duplicates"
RUN_METRIC_FEEDBACK_USED: Final = DATA_TAG_PREFIX + COMPOSITION_FEEDBACK_USED
RUN_METRIC_FEEDBACK_EXCLUDED: Final = DATA_TAG_PREFIX + COMPOSITION_FEEDBACK_EXCLUDED


def pipeline_experiment(experiment: str) -> str:
    """The experiment holding one run per pipeline execution, beside the candidates' `experiment`."""
    return f"{experiment}{PIPELINE_EXPERIMENT_SUFFIX}"


def approval_value(decision: str, actor: str) -> str:
    """The approval tag's value for a decision (`approved` or `rejected`) by `actor`."""
    return f"{decision}:{actor}"


# --------------------------------------------------------------------------- artifact paths

# In each candidate run (relative to its artifact root).
MODEL_ARTIFACT: Final = "model"
ONNX_ARTIFACT: Final = "onnx/model.onnx"
REFERENCE_ARTIFACT: Final = "reference/reference.parquet"
FEATURE_SCHEMA_ARTIFACT: Final = "feature_schema.json"
EFFECTIVE_CONFIG_ARTIFACT: Final = "effective_config.yaml"
DATASET_COMPOSITION_ARTIFACT: Final = "dataset_composition.json"
CLASSIFICATION_REPORT_ARTIFACT: Final = "classification_report.txt"
CONFUSION_MATRIX_ARTIFACT: Final = "confusion_matrix.png"
GATE_ARTIFACT: Final = "gate.json"
# In the pipeline run.
PIPELINE_STATE_ARTIFACT: Final = "pipeline_state.json"
# The logged model's metadata keys.
METADATA_FEATURE_SCHEMA: Final = "feature_schema"
METADATA_CANDIDATE: Final = "candidate"

# Under the state directory (`services.state_dir`, default .mlops).
STATE_PIPELINE_FILE: Final = "pipeline/current.json"
STATE_PIPELINE_LOCK: Final = "pipeline.lock"
STATE_REPORTS_DIR: Final = "reports"
STATE_DRIFT_REPORT: Final = "reports/drift.html"
STATE_GATE_REPORT: Final = "reports/gate.json"
STATE_CT_DIR: Final = "ct"
STATE_LOGS_DIR: Final = "logs"
# What the pipeline's libraries print (MLflow, Evidently, ...), kept out of the terminal unless --verbose.
STATE_PIPELINE_LOG: Final = "logs/pipeline.log"
STATE_PREDICTIONS_DB: Final = "predictions.db"
# The feedback token the local runtime generates on first run (mode 0600) when the env var is unset.
STATE_FEEDBACK_TOKEN: Final = "secrets/feedback-token"  # noqa: S105 - a path
STATE_BENCH_DIR: Final = "bench"  # `make bench`'s cached competitor venvs (MLServer)

# --------------------------------------------------------------------------- environment variables

CONFIG_ENV: Final = "MLSTACK_CONFIG"
"""The config file to read instead of the repository's mlstack.yaml."""
ENV_PREFIX: Final = "MLSTACK__"
ENV_NESTING: Final = "__"
"""`MLSTACK__SECTION__KEY=value` overrides config key `section.key`."""
TRACKING_URI_ENV: Final = "MLFLOW_TRACKING_URI"
ADMIN_TOKEN_ENV: Final = "MLSTACK_ADMIN_TOKEN"  # noqa: S105 - a variable name
# Bearer token of POST /feedback: labels are writes into the next training set (data poisoning).
FEEDBACK_TOKEN_ENV: Final = "MLSTACK_FEEDBACK_TOKEN"  # noqa: S105 - a variable name
WEBHOOK_TOKEN_ENV: Final = "MLSTACK_WEBHOOK_TOKEN"  # noqa: S105 - a variable name
WEBHOOK_URL_ENV: Final = "MLSTACK_WEBHOOK_URL"
# Fault injection (tests): the named stage raises before it runs.
FAIL_STAGE_ENV: Final = "MLSTACK_FAIL_STAGE"
# The compose runtime: optional services to leave out; the repository's host path (Jenkins);
# whether services are reached by name on the compose network (Jenkins).
COMPOSE_EXCLUDE_ENV: Final = "MLSTACK_COMPOSE_EXCLUDE"
COMPOSE_PROJECT_DIR_ENV: Final = "MLSTACK_COMPOSE_PROJECT_DIR"
COMPOSE_IN_NETWORK_ENV: Final = "MLSTACK_COMPOSE_IN_NETWORK"
COMPOSE_PROJECT_NAME_ENV: Final = "COMPOSE_PROJECT_NAME"
# The tag of the project images (docker-compose.yaml's `${MLSTACK_TAG:-local}`; the k8s runtime sets it).
IMAGE_TAG_ENV: Final = "MLSTACK_TAG"
# The k8s runtime: which overlay of deploy/k8s, which kubectl context, which kubectl.
K8S_OVERLAY_ENV: Final = "MLSTACK_K8S_OVERLAY"
K8S_CONTEXT_ENV: Final = "MLSTACK_K8S_CONTEXT"
KUBECTL_ENV: Final = "MLSTACK_KUBECTL"
# prometheus_client's multiprocess mode: the directory the predictor's workers share their metrics in.
PROMETHEUS_MULTIPROC_DIR_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
# Set by Jenkins: the build's tag, the commit built, and the approver the input step names.
BUILD_TAG_ENV: Final = "BUILD_TAG"
GIT_COMMIT_ENV: Final = "GIT_COMMIT"
APPROVED_BY_ENV: Final = "APPROVED_BY"
# Secrets docker-compose.yaml requires (`${VAR:?...}`): compose refuses to start without any of them.
REQUIRED_SECRETS: Final[tuple[str, ...]] = (
    "POSTGRES_PASSWORD",
    "MLFLOW_DB_PASSWORD",
    "PREDICTIONS_DB_PASSWORD",
    "GF_SECURITY_ADMIN_PASSWORD",
    "JENKINS_ADMIN_PASSWORD",
    ADMIN_TOKEN_ENV,
    FEEDBACK_TOKEN_ENV,
    WEBHOOK_TOKEN_ENV,
)


def config_env_var(dotted_key: str) -> str:
    """The environment variable that overrides a config key: `api.workers` -> `MLSTACK__API__WORKERS`."""
    return ENV_PREFIX + ENV_NESTING.join(part.upper() for part in dotted_key.split("."))


# --------------------------------------------------------------------------- exit codes

# What `mlstack` exits with, beyond 0 (done) and 1 (a stage or action failed): scripts and the CT
# trigger branch on these.
EXIT_BAD_INPUT: Final = 2  # an invalid argument or configuration (nothing was done)
EXIT_LOCKED: Final = 3  # another pipeline run holds the lock
EXIT_HELD_BACK: Final = 10  # `mlstack ct check`: the CT policy holds a retrain back

# --------------------------------------------------------------------------- predictor routes

# The predictor's own API.
PREDICT_PATH: Final = "/predict"
FEEDBACK_PATH: Final = "/feedback"
HEALTHZ_PATH: Final = "/healthz"
READYZ_PATH: Final = "/readyz"
VERSION_PATH: Final = "/version"
SCHEMA_PATH: Final = "/schema"
METRICS_PATH: Final = "/metrics"
ADMIN_RELOAD_PATH: Final = "/admin/reload"
# `mlflow models serve`'s scoring protocol (the pyfunc scoring server's routes).
INVOCATIONS_PATH: Final = "/invocations"
PING_PATH: Final = "/ping"
HEALTH_PATH: Final = "/health"
# Open Inference Protocol v2 (KServe, MLServer, Triton); {model_name} is the registered model's name.
V2_SERVER_PATH: Final = "/v2"
V2_LIVE_PATH: Final = "/v2/health/live"
V2_READY_PATH: Final = "/v2/health/ready"
V2_MODEL_PATH: Final = "/v2/models/{model_name}"
V2_MODEL_READY_PATH: Final = "/v2/models/{model_name}/ready"
V2_INFER_PATH: Final = "/v2/models/{model_name}/infer"
V2_VERSION_PATH: Final = "/v2/models/{model_name}/versions/{model_version}"
V2_VERSION_READY_PATH: Final = "/v2/models/{model_name}/versions/{model_version}/ready"
V2_VERSION_INFER_PATH: Final = "/v2/models/{model_name}/versions/{model_version}/infer"


# --------------------------------------------------------------------------- services and ports

Service = Literal["postgres", "mlflow", "api", "exporter", "prometheus", "alertmanager", "grafana", "jenkins"]
POSTGRES: Final[Service] = "postgres"
MLFLOW: Final[Service] = "mlflow"
API: Final[Service] = "api"
EXPORTER: Final[Service] = "exporter"
PROMETHEUS: Final[Service] = "prometheus"
ALERTMANAGER: Final[Service] = "alertmanager"
GRAFANA: Final[Service] = "grafana"
JENKINS: Final[Service] = "jenkins"
CONTAINER_PORTS: Final[Mapping[Service, int]] = {
    POSTGRES: 5432,
    MLFLOW: 5000,
    API: 7654,
    EXPORTER: 8000,
    PROMETHEUS: 9090,
    ALERTMANAGER: 9093,
    GRAFANA: 3000,
    JENKINS: 8080,
}
"""Each service's port inside its container; the default host port on 127.0.0.1 is the same number."""
# The HTTP services the pipeline deploys or checks (PostgreSQL and Jenkins are not its business).
HTTP_SERVICES: Final[tuple[Service, ...]] = (MLFLOW, API, EXPORTER, PROMETHEUS, ALERTMANAGER, GRAFANA)
# The predictor's ASGI app (`python -m mlstack_api --app`; uvicorn imports it in every worker).
PREDICTOR_APP: Final = "mlstack_api.main:app"
# The local CT trigger (Alertmanager's webhook receiver; not a container).
TRIGGER_PORT: Final = 9095
LOOPBACK: Final = "127.0.0.1"
