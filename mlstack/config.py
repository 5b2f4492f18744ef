"""The one declarative config: YAML file, then env vars, then CLI overrides."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mlstack import contract
from mlstack.contract import CONFIG_ENV, ENV_NESTING, ENV_PREFIX, TRACKING_URI_ENV, TriggerReason

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_PATH = REPO_ROOT / "mlstack.yaml"

PrimaryMetric = Literal["accuracy", "precision_weighted", "recall_weighted", "f1_weighted"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProjectConfig(_Section):
    experiment: str = "wine-classifier"
    registered_model: str = "wine-classifier"
    champion_alias: str = "champion"
    challenger_alias: str = "challenger"


class MlflowConfig(_Section):
    tracking_uri: str = f"http://{contract.LOOPBACK}:{contract.CONTAINER_PORTS[contract.MLFLOW]}"


FeatureType = Literal["numeric", "categorical"]
UnknownCategory = Literal["ignore", "error"]


class ColumnOverride(_Section):
    """What the config says about one feature column, over what was inferred from the data."""

    type: FeatureType | None = None
    categories: list[str] | None = None  # the closed vocabulary (declaring it implies unknown: error)
    nullable: bool | None = None  # may the column be missing (null) in training data and requests
    unknown: UnknownCategory | None = None  # an unseen category: one-hot zeros (ignore) or a 422 (error)

    @field_validator("categories")
    @classmethod
    def _distinct(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            value = [str(v) for v in value]
            if not value:
                raise ValueError("categories must not be empty")
            if len(set(value)) != len(value):
                raise ValueError(f"categories must be distinct: {value}")
        return value

    @model_validator(mode="after")
    def _categorical_keys(self) -> ColumnOverride:
        if self.type == "numeric" and (self.categories is not None or self.unknown is not None):
            raise ValueError("categories and unknown apply to categorical columns, not numeric ones")
        return self


class DataConfig(_Section):
    source: Literal["wine", "csv"] = "wine"
    csv_path: str | None = None
    target: str = "target"
    id_column: str | None = None
    drop_columns: list[str] = Field(default_factory=list)
    columns: dict[str, ColumnOverride] = Field(default_factory=dict)
    test_size: float = Field(0.25, gt=0, lt=1)
    seed: int = 42
    reference_sample_rows: int = Field(500, ge=10)
    # What the drift reference logged with a model stands for: its most recent training rows by time
    # (feedback included), or a random sample of all its training rows.
    reference: Literal["recent", "random"] = "recent"
    min_new_labelled_rows: int = Field(50, ge=0)
    use_feedback: bool = True

    @model_validator(mode="after")
    def _columns_do_not_clash(self) -> DataConfig:
        ignored = {*self.drop_columns, *([self.id_column] if self.id_column else [])}
        if self.target in ignored:
            raise ValueError(f"the target column {self.target!r} cannot be dropped or be the id column")
        both = sorted(ignored & set(self.columns))
        if both:
            raise ValueError(f"columns {both} are dropped (drop_columns/id_column) and overridden in columns")
        return self


class CandidateConfig(_Section):
    name: str
    # A built-in name (`RandomForestClassifier`, ...), or a dotted path to a classifier class or to
    # a factory `f(schema, **params) -> Pipeline` (importable from training.code_dirs).
    estimator: str
    scale: bool = True  # standardise numeric columns (trees: false; it costs ONNX float32 parity)
    params: dict[str, Any] = Field(default_factory=dict)


class OnnxConfig(_Section):
    enabled: bool = True
    probability_tolerance: float = 1e-4


class TrainingConfig(_Section):
    primary_metric: PrimaryMetric = "f1_weighted"
    candidates: list[CandidateConfig]
    onnx: OnnxConfig = OnnxConfig()
    # Directories put on sys.path before dotted-path estimators are imported (relative: repo root).
    code_dirs: list[str] = Field(default_factory=lambda: ["model-training"])
    # OpenMP/BLAS threads while a candidate fits (HistGradientBoosting, LightGBM, numpy). 1 keeps a
    # shared machine responsive (spinning OpenMP threads on busy cores cost 10-20x); null: all cores.
    threads: int | None = Field(1, ge=1)

    @field_validator("candidates")
    @classmethod
    def _unique_names(cls, value: list[CandidateConfig]) -> list[CandidateConfig]:
        names = [c.name for c in value]
        if not names:
            raise ValueError("at least one candidate is required")
        if len(set(names)) != len(names):
            raise ValueError(f"candidate names must be unique: {names}")
        return value


class GateConfig(_Section):
    floor: float = Field(0.85, ge=0, le=1)
    min_improvement: float = 0.0
    tolerance: float = Field(1e-6, ge=0)
    require_approval: bool = False


class ServicesConfig(_Section):
    state_dir: str = ".mlops"
    # Host ports on 127.0.0.1: by default the containers' own port numbers.
    mlflow_port: int = contract.CONTAINER_PORTS[contract.MLFLOW]
    api_port: int = contract.CONTAINER_PORTS[contract.API]
    exporter_port: int = contract.CONTAINER_PORTS[contract.EXPORTER]
    prometheus_port: int = contract.CONTAINER_PORTS[contract.PROMETHEUS]
    alertmanager_port: int = contract.CONTAINER_PORTS[contract.ALERTMANAGER]
    grafana_port: int = contract.CONTAINER_PORTS[contract.GRAFANA]
    trigger_port: int = contract.TRIGGER_PORT
    healthcheck_timeout_s: float = 120.0


class ApiConfig(_Section):
    max_batch: int = Field(1000, ge=1)
    max_body_bytes: int = Field(1_048_576, ge=1024)
    reload_interval_s: float = Field(3.0, gt=0)
    # null: one worker per CPU the process may use (affinity mask, cgroup CPU quota); docs/api.md.
    workers: int | None = Field(None, ge=1)


class PredictionStoreConfig(_Section):
    enabled: bool = True
    url: str | None = None
    queue_size: int = Field(50_000, ge=1)
    batch_size: int = Field(2000, ge=1)
    commit_delay_s: float = Field(0.0, ge=0, le=1)
    commit_timeout_s: float = Field(5.0, gt=0)
    sqlite_synchronous: Literal["normal", "full"] = "normal"


class ExporterConfig(_Section):
    refresh_interval_s: float = Field(10.0, gt=0)
    drift_interval_s: float = Field(30.0, gt=0)
    drift_window: int = Field(1000, ge=1)
    drift_min_rows: int = Field(100, ge=1)
    accuracy_window: int = Field(500, ge=1)
    feedback_window: int = Field(500, ge=1)
    drift_report_path: str | None = None  # null = <state_dir>/reports/drift.html


class MonitoringConfig(_Section):
    scrape_interval_s: int = Field(10, ge=1)
    drift_share_threshold: float = Field(0.5, ge=0, le=1)
    drift_for_minutes: float = Field(5, ge=0)
    latency_p99_seconds: float = 0.1
    error_ratio: float = 0.05
    accuracy_floor: float = 0.8
    accuracy_min_labelled: int = 50
    feedback_excluded_share: float = Field(0.1, ge=0, lt=1)
    feedback_min_labelled: int = Field(20, ge=1)
    champion_max_age_days: float = 30
    # A CT alert (drift, accuracy) keeps firing this long after its condition clears (keep_firing_for),
    # so a flapping signal stays one alert.
    ct_keep_firing_minutes: float = Field(10, ge=0)
    exporter_stale_seconds: float = 300


class CtConfig(_Section):
    cooldown_s: float = Field(900, ge=0)
    triggers_requiring_new_data: list[TriggerReason] = Field(
        default_factory=lambda: list(contract.ALERT_TRIGGERS)
    )


class Config(_Section):
    """The effective configuration of one pipeline run or service."""

    project: ProjectConfig = ProjectConfig()
    mlflow: MlflowConfig = MlflowConfig()
    data: DataConfig = DataConfig()
    training: TrainingConfig
    gate: GateConfig = GateConfig()
    services: ServicesConfig = ServicesConfig()
    api: ApiConfig = ApiConfig()
    prediction_store: PredictionStoreConfig = PredictionStoreConfig()
    exporter: ExporterConfig = ExporterConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    ct: CtConfig = CtConfig()

    @model_validator(mode="after")
    def _buffer_fits_a_batch(self) -> Config:
        if self.prediction_store.queue_size < self.api.max_batch:
            raise ValueError(
                f"prediction_store.queue_size ({self.prediction_store.queue_size}) must be at least "
                f"api.max_batch ({self.api.max_batch}), or a full batch could never be logged"
            )
        return self

    @property
    def state_dir(self) -> Path:
        """Absolute state directory (relative paths are taken from the repo root)."""
        path = Path(self.services.state_dir)
        return path if path.is_absolute() else REPO_ROOT / path

    @property
    def prediction_store_url(self) -> str:
        """The prediction store URL, defaulting to SQLite inside the state dir."""
        return self.prediction_store.url or f"sqlite:///{self.state_dir / contract.STATE_PREDICTIONS_DB}"

    def to_flat_dict(self) -> dict[str, str]:
        """Dotted-key view, for logging as MLflow params."""
        flat: dict[str, str] = {}

        def walk(prefix: str, value: Any) -> None:
            if isinstance(value, dict):
                for key, sub in value.items():
                    walk(f"{prefix}.{key}" if prefix else key, sub)
            else:
                flat[prefix] = json.dumps(value) if not isinstance(value, str) else value

        walk("", self.model_dump(mode="json"))
        return flat


# Keys of the `data` section that decide when or what to monitor, not what the model learns: they
# stay out of the training config hash, so changing them does not count as new inputs at the gate.
NON_TRAINING_DATA_KEYS = frozenset({"min_new_labelled_rows", "reference", "reference_sample_rows"})


def training_config_hash(config: Config) -> str:
    """A hash of the effective config that shapes a model: the `data` and `training` sections.

    The gate compares it (with the data hash) against the champion's `config_hash` tag: equal
    hashes and an equal score mean the run reproduced the champion, so the champion stays.
    Unknown or new keys count, so a key added later errs on the side of "new inputs".
    """
    data = {k: v for k, v in config.data.model_dump(mode="json").items() if k not in NON_TRAINING_DATA_KEYS}
    payload = {"data": data, "training": config.training.model_dump(mode="json")}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _parse_scalar(raw: str) -> Any:
    """Parse an override value with YAML rules, so `0.9`, `true`, `[a, b]` work."""
    return yaml.safe_load(raw) if raw != "" else ""


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = [p for p in dotted.split(".") if p]
    if not parts:
        raise ValueError(f"empty config key in override {dotted!r}")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ValueError(f"config key {dotted!r}: {part!r} is not a section")
        node = child
    node[parts[-1]] = value


def env_overrides(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Collect `MLSTACK__SECTION__KEY=value` overrides, plus `MLFLOW_TRACKING_URI`."""
    environ = dict(os.environ if environ is None else environ)
    overrides: dict[str, Any] = {}
    if environ.get(TRACKING_URI_ENV):
        overrides["mlflow.tracking_uri"] = environ[TRACKING_URI_ENV]
    for key, raw in environ.items():
        if key.startswith(ENV_PREFIX):
            dotted = key[len(ENV_PREFIX) :].lower().replace(ENV_NESTING, ".")
            overrides[dotted] = _parse_scalar(raw)
    return overrides


def parse_set_options(items: list[str]) -> dict[str, Any]:
    """Turn `--set key.sub=value` strings into overrides."""
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects key=value, got {item!r}")
        overrides[key.strip()] = _parse_scalar(raw)
    return overrides


def load_config(
    path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
) -> Config:
    """Load the YAML file, apply env overrides, then explicit (CLI) overrides.

    Args:
        path: config file; defaults to $MLSTACK_CONFIG or the repo's mlstack.yaml.
        overrides: dotted keys to values, applied last.
        environ: environment to read instead of os.environ (tests).
    """
    env = dict(os.environ if environ is None else environ)
    chosen = Path(path or env.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH)
    tree = yaml.safe_load(chosen.read_text()) or {}
    if not isinstance(tree, dict):
        raise ValueError(f"{chosen}: top level must be a mapping")
    for dotted, value in {**env_overrides(env), **(overrides or {})}.items():
        _set_dotted(tree, dotted, value)
    return Config.model_validate(tree)


def select_candidates(config: Config, names: list[str]) -> Config:
    """Keep only the named candidates (Jenkins' MODELS parameter), in config order."""
    if not names:
        return config
    known = {c.name for c in config.training.candidates}
    unknown = sorted(set(names) - known)
    if unknown:
        raise ValueError(f"unknown candidate(s) {unknown}; known: {sorted(known)}")
    kept = [c for c in config.training.candidates if c.name in names]
    return config.model_copy(update={"training": config.training.model_copy(update={"candidates": kept})})
