"""The pipeline: stages defined once, in order, run all together (`mlstack run`) or one by one."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import mlflow
import pandas as pd
import requests

from mlstack import contract, registry
from mlstack.config import REPO_ROOT, Config, training_config_hash
from mlstack.contract import (
    DEFAULT_TRIGGER,
    FAIL_STAGE_ENV,
    POST_PROMOTE_STAGES,
    STAGES,
    Stage,
    stage_method,
)
from mlstack.ct import retrain_policy
from mlstack.data import Dataset, load_base_dataset, split
from mlstack.data_validation import ensure_valid
from mlstack.deployment import Runtime
from mlstack.gate import GateDecision, decide
from mlstack.schema import FeatureSchema
from mlstack.state import CandidateResult, PipelineState
from mlstack.train import evaluate, train_all

log = logging.getLogger(__name__)


class PipelineError(RuntimeError):
    """A stage failed; `stage` names it."""

    def __init__(self, stage: str, message: str) -> None:
        self.stage = stage
        super().__init__(f"stage {stage!r} failed: {message}")


class StageObserver(Protocol):
    """Shows the stages as they run (the CLI's terminal output); the pipeline works without one."""

    def stage(self, name: str, index: int, total: int) -> AbstractContextManager[None]:
        """A context the stage runs in (its output may be diverted meanwhile)."""
        ...

    def finished(self, name: str, index: int, total: int, seconds: float, result: str) -> None: ...

    def failed(self, name: str, index: int, total: int, seconds: float, error: str) -> None: ...


class PipelineLocked(RuntimeError):
    """Another pipeline run holds the lock."""


@dataclass
class Options:
    """How this pipeline run was asked for (CLI flags / Jenkins parameters)."""

    runtime: str = "local"
    force: bool = False
    trigger: str = DEFAULT_TRIGGER
    build_id: str | None = None
    skip_training: bool = False
    rollback_to: str | None = None
    approve: bool = False


def git_sha() -> str:
    """The commit being built (Jenkins' GIT_COMMIT, else git itself, else 'unknown')."""
    if os.environ.get(contract.GIT_COMMIT_ENV):
        return os.environ[contract.GIT_COMMIT_ENV]
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@contextmanager
def pipeline_lock(state_dir: Path) -> Iterator[None]:
    """Hold the pipeline lock, or raise PipelineLocked naming the holder."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / contract.STATE_PIPELINE_LOCK
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise PipelineLocked(
            f"another pipeline run is in progress ({holder}); wait for it to finish"
        ) from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}")
        handle.flush()
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


class Pipeline:
    """Runs stages against one config, runtime and MLflow server."""

    def __init__(self, config: Config, options: Options, runtime: Runtime) -> None:
        self.config = config
        self.options = options
        self.runtime = runtime
        self.client = registry.make_client(config)
        self.reports_dir = config.state_dir / contract.STATE_REPORTS_DIR
        self.state_path = config.state_dir / contract.STATE_PIPELINE_FILE
        self.state = self._load_or_new_state(fresh=False)
        self._dataset: Dataset | None = None
        # Each stage is the method of the same name (`validate-data` -> `validate_data`).
        self.stages: dict[Stage, Callable[[], str]] = {
            name: getattr(self, stage_method(name)) for name in STAGES
        }

    # -- state ---------------------------------------------------------------------------------
    def _load_or_new_state(self, fresh: bool) -> PipelineState:
        wanted = self.options.build_id
        if not fresh and self.state_path.exists():
            stored = PipelineState.load(self.state_path)
            if wanted is None or stored.pipeline_id == wanted:
                return stored
        return PipelineState(pipeline_id=wanted or uuid.uuid4().hex[:12], trigger=self.options.trigger)

    def new_run(self) -> None:
        """Start a fresh pipeline state (used by `mlstack run`)."""
        self.state = self._load_or_new_state(fresh=True)
        self._dataset = None
        self._save()

    def _save(self) -> None:
        self.state.save(self.state_path)

    @property
    def model_name(self) -> str:
        return self.config.project.registered_model

    def lineage_tags(self) -> dict[str, str]:
        return {
            contract.TAG_GIT_SHA: git_sha(),
            contract.TAG_DATA_HASH: self.state.data_hash or "unknown",
            contract.TAG_CONFIG_HASH: training_config_hash(self.config),
            contract.TAG_PIPELINE_ID: self.state.pipeline_id,
            contract.TAG_BUILD_ID: self.options.build_id or os.environ.get(contract.BUILD_TAG_ENV, "local"),
            contract.TAG_TRIGGER: self.state.trigger,
        }

    def _training_off(self) -> str | None:
        """Why training stages do nothing in this run, or None."""
        if self.options.rollback_to:
            return "rollback requested"
        if self.options.skip_training:
            return "skip-training (redeploy only)"
        return self.state.skipped

    # -- running ---------------------------------------------------------------------------------
    def run_stages(self, names: Sequence[str], observer: StageObserver | None = None) -> None:
        """Run the named stages in pipeline order; on failure after a promotion, roll back.

        `observer` (the CLI's `mlstack.console.StageReporter`) shows each stage as it runs.
        """
        unknown = [n for n in names if n not in self.stages]
        if unknown:
            raise ValueError(f"unknown stage(s) {unknown}; stages are {STAGES}")
        ordered = [s for s in STAGES if s in names]
        for index, name in enumerate(ordered, start=1):
            started = time.perf_counter()
            log.info("==> stage %s", name)
            running = observer.stage(name, index, len(ordered)) if observer else contextlib.nullcontext()
            try:
                with running:
                    if os.environ.get(FAIL_STAGE_ENV) == name:
                        raise RuntimeError(f"fault injected by {FAIL_STAGE_ENV}={name}")
                    result = self.stages[name]()
            except Exception as exc:
                self.state.timings[name] = time.perf_counter() - started
                self.state.results[name] = f"FAILED: {exc}"
                if observer:
                    observer.failed(name, index, len(ordered), self.state.timings[name], str(exc))
                self._rollback_after_failure(name)
                self._save()
                raise PipelineError(name, str(exc)) from exc
            self.state.timings[name] = time.perf_counter() - started
            self.state.results[name] = result
            self._save()
            log.info("    %s: %s (%.1fs)", name, result, self.state.timings[name])
            if observer:
                observer.finished(name, index, len(ordered), self.state.timings[name], result)

    def _rollback_after_failure(self, stage: str) -> None:
        if stage not in POST_PROMOTE_STAGES or not self.state.promoted or not self.state.previous_champion:
            return
        try:
            registry.rollback(
                self.client,
                self.config,
                self.state.previous_champion,
                reason=f"auto-rollback: {stage} failed",
            )
            self.state.rolled_back = True
            log.error("champion rolled back to v%s after %s failed", self.state.previous_champion, stage)
        except Exception as exc:  # report, but keep the original failure as the error
            log.error("automatic rollback failed: %s", exc)

    def record_pipeline_run(self, status: str, error: str | None = None) -> None:
        """Log this pipeline execution as a run in `<experiment>-pipeline` (best effort)."""
        try:
            mlflow.set_tracking_uri(self.config.mlflow.tracking_uri)
            experiment = contract.pipeline_experiment(self.config.project.experiment)
            if mlflow.get_experiment_by_name(experiment) is None:
                mlflow.create_experiment(experiment)
            duration = time.time() - self.state.started_at
            tags = {**self.lineage_tags(), contract.TAG_STATUS: status}
            if error:
                tags[contract.TAG_ERROR] = error[:4000]
            with mlflow.start_run(
                experiment_id=mlflow.get_experiment_by_name(experiment).experiment_id,  # type: ignore[union-attr]
                run_name=f"pipeline-{self.state.pipeline_id}",
                tags=tags,
            ):
                mlflow.log_metric("duration_s", duration)
                for stage, seconds in self.state.timings.items():
                    mlflow.log_metric(f"stage_{stage.replace('-', '_')}_s", seconds)
                mlflow.log_dict(self.state.to_dict(), contract.PIPELINE_STATE_ARTIFACT)
        except Exception as exc:
            log.warning("could not record the pipeline run in MLflow: %s", exc)

    # -- stages ----------------------------------------------------------------------------------
    def build(self) -> str:
        return self.runtime.build(self.config)

    def platform(self) -> str:
        self.runtime.start_platform(self.config)
        return "platform up"

    def _require_mlflow(self) -> None:
        uri = self.config.mlflow.tracking_uri
        if not uri.startswith("http"):
            return
        try:
            requests.get(f"{uri.rstrip('/')}/health", timeout=5).raise_for_status()
        except requests.RequestException as exc:
            raise RuntimeError(
                f"MLflow at {uri} is not reachable ({exc.__class__.__name__}); nothing changed"
            ) from exc

    def champion_schema(self) -> FeatureSchema | None:
        """The champion's feature schema, or None before the first promotion."""
        return registry.champion_schema(self.client, self.config)

    def load_dataset(self, *, validate: bool = False) -> Dataset:
        """Base data plus the usable labelled feedback (when configured), deduplicated.

        With `validate` (the validate-data stage) the base data is checked against the champion's
        schema first, and feedback verdicts are recorded in the quarantine table. Feedback rows are
        checked one by one either way, so train and gate see the rows validate-data accepted. One run
        in one process loads the data once.
        """
        if self._dataset is not None and not validate:
            return self._dataset
        schema = self.champion_schema()
        dataset = load_base_dataset(self.config.data)
        if validate:
            base = ensure_valid(dataset, schema, self.config.data)  # base-data errors fail the stage
            for warning in base.warnings:
                log.warning("validate-data: %s", warning)
        if self.config.data.use_feedback:
            from mlstack.feedback import with_feedback

            record = self.state.pipeline_id if validate else None
            dataset = with_feedback(dataset, self.config, schema, record_as=record)
        self._dataset = dataset
        return dataset

    def validate_data(self) -> str:
        if reason := self._training_off():
            return f"skipped: {reason}"
        self._require_mlflow()
        mlflow.set_tracking_uri(self.config.mlflow.tracking_uri)
        dataset = self.load_dataset(validate=True)
        # Feedback rows passed their own checks against the champion's schema; this covers the merged
        # set against what the config declares (types, nullability, classes).
        report = ensure_valid(dataset, None, self.config.data)
        self.state.data_hash = dataset.content_hash()
        self.state.composition = dict(dataset.composition)
        feedback = ""
        if self.config.data.use_feedback:
            composition = dataset.composition
            used = composition.get(contract.COMPOSITION_FEEDBACK_USED, 0)
            excluded = composition.get(contract.COMPOSITION_FEEDBACK_EXCLUDED, 0)
            duplicates = composition.get(contract.COMPOSITION_FEEDBACK_DUPLICATES, 0)
            copies = f", {duplicates} duplicate(s) of rows already in the data" if duplicates else ""
            feedback = f"; feedback {used} used{copies}, {excluded} excluded"
            if excluded:
                feedback += " (quarantined: `mlstack feedback list`)"
        # The CT policy (cooldown, new data) is mlstack.ct's, shared with the local trigger; only usable
        # rows count as new data.
        new_rows = int(str(dataset.composition.get("new_rows", 0)))
        verdict = retrain_policy(self.config, self.state.trigger, new_rows, self.client)
        if not verdict.allowed:
            self.state.skipped = verdict.reason
            return f"skipped: {self.state.skipped}{feedback}"
        return (
            f"{report.rows} rows x {len(report.columns)} features valid (hash {self.state.data_hash})"
            f"{feedback}"
        )

    def train(self) -> str:
        if reason := self._training_off():
            return f"skipped: {reason}"
        self._require_mlflow()
        dataset = self.load_dataset()
        self.state.data_hash = dataset.content_hash()
        composition = {f"{contract.DATA_TAG_PREFIX}{k}": str(v) for k, v in dataset.composition.items()}
        tags = {**self.lineage_tags(), **composition}
        outcome = train_all(self.config, dataset, split(dataset, self.config), tags)
        self.state.candidates = list(outcome.results)
        self.state.failed_candidates = dict(outcome.failures)
        metric = self.config.training.primary_metric
        trained = [f"{r.name} {metric}={r.score(metric):.4f}" for r in outcome.results]
        failed = [f"{name} FAILED ({error})" for name, error in outcome.failures.items()]
        return "; ".join(trained + failed)

    def _best(self) -> CandidateResult:
        if not self.state.candidates:
            raise RuntimeError("no trained candidates in this pipeline run; run the train stage first")
        return self.state.candidates[0]

    def register(self) -> str:
        if reason := self._training_off():
            return f"skipped: {reason}"
        best = self._best()
        version = mlflow.register_model(
            best.model_uri,
            self.model_name,
            tags={
                **self.lineage_tags(),
                contract.TAG_CANDIDATE: best.name,
                contract.TAG_PRIMARY_METRIC: self.config.training.primary_metric,
                contract.TAG_ONNX_PARITY: best.onnx_parity,
                contract.TAG_ONNX_ARTIFACT: (
                    contract.ONNX_ARTIFACT if best.onnx_parity != contract.ONNX_SKIPPED else ""
                ),
                **{k: f"{v:.6f}" for k, v in best.metrics.items() if "class" not in k},
            },
        )
        self.client.update_registered_model(
            self.model_name,
            description=f"Registered by the mlstack pipeline; see {contract.ALIAS_HISTORY_TAG_PREFIX}* tags.",
        )
        self.state.registered_version = str(version.version)
        registry.move_alias(
            self.client,
            self.model_name,
            self.config.project.challenger_alias,
            version.version,
            f"registered by pipeline {self.state.pipeline_id} ({self.state.trigger})",
        )
        return f"{self.model_name} v{version.version} ({best.name}) is {self.config.project.challenger_alias}"

    def score_alias(self, alias: str, dataset: Dataset) -> float:
        """Score the model behind an alias on this run's held-out test set.

        The test rows are typed by the model's own feature schema, as the predictor would send them.
        """
        uri = registry.alias_uri(self.config, alias)
        model = mlflow.sklearn.load_model(uri)
        schema = registry.logged_schema(uri)
        data_split = split(dataset, self.config)
        x_test = data_split.x_test
        if schema is not None:
            x_test = schema.model_frame(x_test)
        return evaluate(model, x_test, data_split.y_test)[self.config.training.primary_metric]

    def gate(self) -> str:
        if reason := self._training_off():
            return f"skipped: {reason}"
        if self.state.registered_version is None:
            raise RuntimeError("nothing registered in this pipeline run; run the register stage first")
        dataset = self.load_dataset()
        champ = registry.champion_version(self.client, self.config)
        challenger_score = self.score_alias(self.config.project.challenger_alias, dataset)
        champion_score = None
        if champ is not None:
            try:
                champion_score = self.score_alias(self.config.project.champion_alias, dataset)
            except (ValueError, KeyError) as exc:  # e.g. the feature set changed under it
                raise RuntimeError(
                    f"champion v{champ.version} cannot be scored on the current data: {exc}"
                ) from exc
        decision = decide(
            self.config.training.primary_metric,
            self.state.registered_version,
            challenger_score,
            champ.version if champ else None,
            champion_score,
            self.config.gate,
            force=self.options.force,
            same_inputs=champ is not None and self._same_inputs_as(dict(champ.tags or {})),
        )
        self._record_gate(decision)
        verdict = "PROMOTE" if decision.promote else "KEEP CHAMPION"
        return f"{verdict}: {decision.reason}"

    def _same_inputs_as(self, champion_tags: dict[str, str]) -> bool:
        """Whether this run trained on the champion's inputs.

        The champion's data and config hashes are its model-version tags (`data_hash`,
        `config_hash`, set at registration from this run's lineage). A champion registered before
        the config hash existed has no such tag and never counts as the same inputs.
        """
        ours = self.lineage_tags()
        keys = (contract.TAG_DATA_HASH, contract.TAG_CONFIG_HASH)
        return all(champion_tags.get(k) not in (None, "", "unknown") for k in keys) and all(
            champion_tags[k] == ours[k] for k in keys
        )

    def _record_gate(self, decision: GateDecision) -> None:
        self.state.gate = decision
        self.reports_dir.mkdir(parents=True, exist_ok=True)
        report = {**decision.to_dict(), "pipeline_id": self.state.pipeline_id, "trigger": self.state.trigger}
        (self.config.state_dir / contract.STATE_GATE_REPORT).write_text(json.dumps(report, indent=2))
        run_id = self._best().run_id
        kept = not decision.promote and decision.tie and decision.same_inputs
        self.client.set_tag(
            run_id,
            contract.RUN_TAG_GATE_DECISION,
            "promote" if decision.promote else "keep" if kept else "reject",
        )
        self.client.set_tag(run_id, contract.RUN_TAG_GATE_REASON, decision.reason)
        if decision.forced:
            self.client.set_tag(run_id, contract.RUN_TAG_GATE_FORCED_BY, registry.actor())
        self.client.log_metric(run_id, contract.RUN_METRIC_GATE_CHALLENGER, decision.challenger_score)
        if decision.champion_score is not None:
            self.client.log_metric(run_id, contract.RUN_METRIC_GATE_CHAMPION, decision.champion_score)
        self.client.log_dict(run_id, report, contract.GATE_ARTIFACT)
        version = self.state.registered_version or ""
        verdict = (
            contract.GATE_PASSED
            if decision.promote
            else contract.GATE_SAME_AS_CHAMPION
            if kept
            else contract.GATE_FAILED
        )
        self.client.set_model_version_tag(self.model_name, version, contract.TAG_GATE, verdict)
        if decision.forced:
            self.client.set_model_version_tag(self.model_name, version, contract.TAG_GATE_FORCED, "true")

    def approve(self) -> str:
        if reason := self._training_off():
            return f"skipped: {reason}"
        if not self.state.gate or not self.state.gate.promote:
            return "nothing to approve: the gate kept the champion"
        if not self.config.gate.require_approval:
            return "approval not required"
        version = self.state.registered_version or ""
        if self.options.approve:
            self.client.set_model_version_tag(
                self.model_name,
                version,
                contract.TAG_APPROVAL,
                contract.approval_value(contract.APPROVED, registry.actor()),
            )
            return f"v{version} approved by {registry.actor()}"
        self.state.awaiting_approval = True
        self.client.set_model_version_tag(
            self.model_name, version, contract.TAG_APPROVAL, contract.APPROVAL_PENDING
        )
        return f"v{version} waits as {self.config.project.challenger_alias}: run `mlstack approve {version}`"

    def promote(self) -> str:
        if self.options.rollback_to:
            move = registry.rollback(
                self.client, self.config, self.options.rollback_to, reason="rollback requested"
            )
            return f"champion rolled back v{move.from_version} -> v{move.to_version}"
        if reason := self._training_off():
            return f"skipped: {reason}"
        if self.state.awaiting_approval:
            return "skipped: awaiting approval"
        if not self.state.gate or not self.state.gate.promote:
            return "champion unchanged (gate)"
        champ = registry.champion_version(self.client, self.config)
        self.state.previous_champion = champ.version if champ else None
        version = self.state.registered_version or ""
        reason_text = f"pipeline {self.state.pipeline_id} ({self.state.trigger}): {self.state.gate.reason}"
        registry.move_alias(
            self.client, self.model_name, self.config.project.champion_alias, version, reason_text
        )
        self.state.promoted = True
        return f"champion v{self.state.previous_champion or '-'} -> v{version}"

    def deploy(self) -> str:
        self.runtime.deploy(self.config)
        return "predictor and exporter deployed"

    def healthcheck(self) -> str:
        statuses = self.runtime.healthcheck(self.config)
        return ", ".join(f"{k}={v}" for k, v in statuses.items())

    def smoke(self) -> str:
        """One real prediction; the predictor must answer with the current champion."""
        urls = self.runtime.service_urls(self.config)
        if "api" not in urls:
            return "skipped: no predictor in this runtime"
        champ = registry.champion_version(self.client, self.config)
        schema = self.champion_schema()
        if champ is None or schema is None:
            raise RuntimeError("no champion to smoke-test")
        instance = schema.typical_instance()
        deadline = time.monotonic() + max(30.0, 10 * self.config.api.reload_interval_s)
        served = None
        while time.monotonic() < deadline:
            response = requests.post(
                f"{urls['api']}{contract.PREDICT_PATH}", json={"instances": [instance]}, timeout=10
            )
            if response.status_code == 200:
                served = str(response.json()["model"]["version"])
                if served == champ.version:
                    first = response.json()["predictions"][0]
                    return f"predictor serves v{served}: class {first.get('class_name', first)}"
            time.sleep(0.5)
        raise RuntimeError(f"predictor serves v{served}, expected champion v{champ.version}")

    def drift_report(self) -> str:
        """Write the drift report of the current prediction window next to the other reports."""
        from mlstack.drift_report import write_drift_report

        return write_drift_report(self.config, self.config.state_dir / contract.STATE_DRIFT_REPORT)


SUMMARY_REASON_CHARS = 100  # the full reason is the run's onnx_detail tag


def _short(text: str) -> str:
    return text if len(text) <= SUMMARY_REASON_CHARS else text[: SUMMARY_REASON_CHARS - 3] + "..."


def summary_frame(state: PipelineState, metric: str) -> pd.DataFrame:
    """The candidates table for the end-of-run summary: scores, the serving runtime and why, failures."""
    rows = [
        {
            "candidate": c.name,
            metric: f"{c.score(metric):.4f}",
            "accuracy": f"{c.score('accuracy'):.4f}",
            "runtime": "onnx" if c.onnx_parity == contract.ONNX_PASSED else "sklearn",
            "onnx": c.onnx_parity,
            "why": _short(c.onnx_detail),
            "run_id": c.run_id[:8],
        }
        for c in state.candidates
    ]
    rows += [
        {
            "candidate": name,
            metric: "-",
            "accuracy": "-",
            "runtime": "-",
            "onnx": "-",
            "why": f"FAILED: {error}",
            "run_id": "-",
        }
        for name, error in state.failed_candidates.items()
    ]
    return pd.DataFrame(rows)
