"""Continuous-training policy: when an alert or a schedule may start a retrain, audited.

One policy serves both paths. The local trigger (`mlstack trigger serve`) asks `evaluate_policy` before it
starts a pipeline; the pipeline's validate-data stage asks `retrain_policy` again, so a Jenkins build fired
by Alertmanager's webhook (compose path) obeys the same cooldown and new-data rules.

Rules, in order (after the bearer token, `bearer_token_ok`):

* cooldown: an alert-triggered retrain (`drift`, `accuracy`) waits `ct.cooldown_s` after the last one
  that trained. "Last" comes from MLflow (finished training runs tagged `trigger=drift|accuracy`), so both
  paths see each other's retrains.
* new data: triggers listed in `ct.triggers_requiring_new_data` need `data.min_new_labelled_rows`
  labelled rows that arrived after the champion was trained.
* single flight and coalescing (local trigger only; Jenkins has `disableConcurrentBuilds`): one pipeline
  at a time; alerts arriving meanwhile collapse into at most one follow-up, re-checked when the run ends.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mlstack.config import REPO_ROOT, Config
from mlstack.contract import (
    ALERT_TRIGGERS,
    EXIT_LOCKED,
    STATE_CT_DIR,
    STATE_LOGS_DIR,
    STATE_PIPELINE_FILE,
    TAG_TRIGGER,
    TRIGGERS,
    trigger_priority,
)

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)

Decision = Literal["ran", "coalesced", "cooled-down", "rejected", "skipped"]
DECISIONS: tuple[Decision, ...] = ("ran", "coalesced", "cooled-down", "rejected", "skipped")
AUDIT_FILENAME = "audit.jsonl"
CONFIG_FILENAME = "config.yaml"
COOLDOWN_PREFIX = "cooldown"
# Upper bound of one triggered pipeline run; the process group is killed after it.
PIPELINE_TIMEOUT_S = 2 * 3600.0


def ct_dir(config: Config) -> Path:
    """`<state_dir>/ct`: the audit log and the config the trigger hands to its pipelines."""
    return config.state_dir / STATE_CT_DIR


def effective_config_file(config: Config) -> Path:
    """Write `config` to `<state_dir>/ct/config.yaml` (mode 0600) and return the path.

    The trigger service and the pipelines it starts read this file, so a pipeline started by an alert
    runs with the config (file, env and `--set` overrides) that the platform was started with.
    """
    from mlstack.train import write_effective_config  # heavy imports: only when writing

    path = ct_dir(config) / CONFIG_FILENAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)  # a PostgreSQL store URL may carry a password
    write_effective_config(config, path)
    return path


# --------------------------------------------------------------------------- audit


class AuditLog:
    """Append-only JSON lines, one per decision, at `<state_dir>/ct/audit.jsonl`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    @classmethod
    def for_config(cls, config: Config) -> AuditLog:
        return cls(ct_dir(config) / AUDIT_FILENAME)

    def record(self, decision: Decision, reason: str, **fields: Any) -> dict[str, Any]:
        """Append one entry and return it; `fields` must be JSON-serialisable."""
        if decision not in DECISIONS:
            raise ValueError(f"unknown decision {decision!r}; one of {DECISIONS}")
        now = time.time()
        entry = {
            "at": datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds"),
            "unix": round(now, 3),
            "decision": decision,
            "reason": reason,
            **fields,
        }
        line = json.dumps(entry, sort_keys=False, default=str) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(line)
        log.info("ct %s: %s %s", decision, fields.get("trigger", "-"), reason)
        return entry

    def entries(self) -> list[dict[str, Any]]:
        """Every entry, oldest first (a torn last line is skipped)."""
        if not self.path.exists():
            return []
        found = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                found.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return found


# --------------------------------------------------------------------------- policy


def bearer_token_ok(header: str | None, expected: str) -> bool:
    """Constant-time check of `Authorization: Bearer <token>` against the webhook token."""
    if not header or not expected:
        return False
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(token.strip().encode(), expected.encode())


@dataclass(frozen=True)
class PolicyVerdict:
    """Whether a retrain may run now; `decision` is what the audit records when it may not."""

    allowed: bool
    decision: Decision
    reason: str
    retry_after_s: float | None = None


def evaluate_policy(
    config: Config,
    trigger: str,
    *,
    now: float,
    last_retrain_at: float | None,
    new_rows: int | None = None,
) -> PolicyVerdict:
    """The retrain policy, as a pure function.

    Args:
        config: `ct.cooldown_s`, `ct.triggers_requiring_new_data`, `data.min_new_labelled_rows`.
        trigger: why the retrain is asked for (manual, push, schedule, drift, accuracy).
        now: the current time (epoch seconds).
        last_retrain_at: when the last alert-triggered retrain finished training, or None.
        new_rows: labelled rows newer than the champion; None when not known yet (the pipeline
            counts them in validate-data).
    """
    cooldown = config.ct.cooldown_s
    if trigger in ALERT_TRIGGERS and cooldown > 0 and last_retrain_at is not None:
        elapsed = max(0.0, now - last_retrain_at)
        if elapsed < cooldown:
            remaining = cooldown - elapsed
            return PolicyVerdict(
                False,
                "cooled-down",
                f"{COOLDOWN_PREFIX}: the last alert-triggered retrain trained {elapsed:.0f}s ago; "
                f"ct.cooldown_s = {cooldown:g} (retry in {remaining:.0f}s)",
                remaining,
            )
    needed = config.data.min_new_labelled_rows
    if new_rows is not None and trigger in config.ct.triggers_requiring_new_data and new_rows < needed:
        return PolicyVerdict(
            False,
            "skipped",
            f"insufficient new data: {new_rows} new labelled rows < {needed} required "
            f"for a retrain triggered by {trigger}",
        )
    return PolicyVerdict(True, "ran", f"{trigger} retrain allowed")


def last_retrain_at(config: Config, client: MlflowClient | None = None) -> float | None:
    """When the newest finished training run tagged `trigger=drift|accuracy` ended (epoch seconds).

    Both the local runtime and Jenkins tag every candidate run with its trigger, so this sees
    retrains from either path. None when there was none (or the experiment does not exist yet).
    """
    from mlstack import registry

    client = client or registry.make_client(config)
    experiment = client.get_experiment_by_name(config.project.experiment)
    if experiment is None:
        return None
    latest: float | None = None
    for trigger in ALERT_TRIGGERS:
        runs = client.search_runs(
            [experiment.experiment_id],
            filter_string=f"tags.{TAG_TRIGGER} = '{trigger}' and attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        for run in runs:
            ended = (run.info.end_time or run.info.start_time or 0) / 1000.0
            latest = ended if latest is None else max(latest, ended)
    return latest


def retrain_policy(
    config: Config, trigger: str, new_rows: int | None, client: MlflowClient | None = None
) -> PolicyVerdict:
    """`evaluate_policy` with the last retrain looked up in MLflow (used by the validate-data stage)."""
    last = last_retrain_at(config, client) if trigger in ALERT_TRIGGERS and config.ct.cooldown_s > 0 else None
    return evaluate_policy(config, trigger, now=time.time(), last_retrain_at=last, new_rows=new_rows)


# --------------------------------------------------------------------------- running the pipeline


@dataclass
class RunOutcome:
    """How one triggered pipeline run ended."""

    status: Literal["success", "skipped", "failed", "locked"]
    exit_code: int
    duration_s: float
    pipeline_id: str | None = None
    reason: str = ""
    trained: bool = False
    registered_version: str | None = None
    promoted: bool = False
    awaiting_approval: bool = False
    log: str | None = None


class PipelineRunner:
    """Runs `python -m mlstack.cli run --runtime R --trigger T --config ct/config.yaml`; reads the result.

    The subprocess inherits this process's environment (tokens, `MLSTACK__*` overrides) and writes
    its output to `<state_dir>/logs/ct-pipeline.log`.
    """

    def __init__(
        self,
        config: Config,
        runtime: str = "local",
        *,
        config_file: Path | None = None,
        timeout_s: float = PIPELINE_TIMEOUT_S,
    ) -> None:
        self.config = config
        self.runtime = runtime
        self.config_file = config_file or effective_config_file(config)
        self.timeout_s = timeout_s
        self.log_path = config.state_dir / STATE_LOGS_DIR / "ct-pipeline.log"
        self.state_path = config.state_dir / STATE_PIPELINE_FILE

    def command(self, trigger: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "mlstack.cli",
            "run",
            "--runtime",
            self.runtime,
            "--trigger",
            trigger,
            "--config",
            str(self.config_file),
        ]

    def __call__(self, trigger: str) -> RunOutcome:
        started, started_at = time.monotonic(), time.time()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            out.write(f"\n--- {datetime.now(UTC).isoformat()} ct pipeline, trigger={trigger}\n".encode())
            out.flush()
            proc = subprocess.Popen(
                self.command(trigger),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=REPO_ROOT,
                env=dict(os.environ),
                # Same process group as the trigger: stopping the trigger service stops its pipeline.
            )
            try:
                code = proc.wait(timeout=self.timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
        return self.outcome(code, time.monotonic() - started, started_at)

    def outcome(self, code: int, duration_s: float, started_at: float) -> RunOutcome:
        """Classify a finished run from its exit code and the pipeline state it left.

        The state file is only trusted when that run wrote it (its `started_at` is not older).
        """
        logged = str(self.log_path)
        if code == EXIT_LOCKED:
            return RunOutcome(
                "locked", code, duration_s, reason="another pipeline run holds the lock", log=logged
            )
        state: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            state = json.loads(self.state_path.read_text())
        if float(state.get("started_at", 0)) < started_at - 1:
            state = {}  # the run died before it began: the file is an older run's
        outcome = RunOutcome(
            "success",
            code,
            duration_s,
            pipeline_id=state.get("pipeline_id"),
            reason="pipeline finished",
            trained=bool(state.get("candidates")),
            registered_version=state.get("registered_version"),
            promoted=bool(state.get("promoted")),
            awaiting_approval=bool(state.get("awaiting_approval")),
            log=logged,
        )
        if code != 0:
            failed = [f"{k}: {v}" for k, v in state.get("results", {}).items() if str(v).startswith("FAILED")]
            outcome.status, outcome.reason = "failed", failed[-1] if failed else f"exit code {code}"
        elif state.get("skipped"):
            outcome.status, outcome.reason = "skipped", str(state["skipped"])
        return outcome


# --------------------------------------------------------------------------- single flight


@dataclass(frozen=True)
class Submission:
    """The answer to one retrain request: the audited decision and the HTTP status to return."""

    decision: Decision
    reason: str
    status: int
    extra: dict[str, Any] = field(default_factory=dict)


class TriggerController:
    """Single-flight retrains with coalescing and cooldown, every decision audited.

    * Idle: the policy is checked (cooldown); if allowed, the pipeline starts in a worker thread ("ran").
    * Busy: the request becomes the one follow-up ("coalesced", queued) or is merged into the
      follow-up already queued ("coalesced", merged). No request is ever queued twice.
    * When a run ends, the follow-up (if any) goes through the policy again: after a retrain that
      trained, the cooldown normally turns it into "cooled-down"; after a skipped run (not enough new
      data yet) it runs, by then on more data.
    """

    def __init__(
        self,
        config: Config,
        audit: AuditLog,
        runner: Callable[[str], RunOutcome],
        *,
        last_retrain: Callable[[], float | None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.audit = audit
        self.runner = runner
        self._lookup_last_retrain = last_retrain or (lambda: last_retrain_at(config))
        self.clock = clock
        self._lock = threading.Lock()
        self._running: str | None = None
        self._pending: str | None = None
        self._pending_sources: list[str] = []
        self._local_last_retrain: float | None = None
        self._idle = threading.Event()
        self._idle.set()
        self._worker: threading.Thread | None = None
        self.outcomes: list[RunOutcome] = []

    # -- state -------------------------------------------------------------------------------------
    @property
    def running(self) -> str | None:
        """The trigger of the run in progress, or None."""
        return self._running

    @property
    def pending(self) -> str | None:
        """The queued follow-up's trigger, or None."""
        return self._pending

    def wait_idle(self, timeout: float) -> bool:
        """Block until no run is in progress or queued; False on timeout."""
        return self._idle.wait(timeout)

    def last_retrain(self) -> tuple[float | None, str | None]:
        """The newest alert-triggered retrain known (MLflow or this process), and a lookup warning."""
        warning = None
        try:
            recorded = self._lookup_last_retrain()
        except Exception as exc:  # MLflow down: this process's own memory still applies
            recorded = None
            warning = f"MLflow lookup of the last retrain failed ({exc.__class__.__name__})"
            log.warning("%s: %s", warning, exc)
        known = [t for t in (recorded, self._local_last_retrain) if t is not None]
        return (max(known) if known else None), warning

    # -- requests ----------------------------------------------------------------------------------
    def submit(self, trigger: str, source: str = "alertmanager", **detail: Any) -> Submission:
        """Ask for a retrain; never blocks on the pipeline."""
        if trigger not in TRIGGERS:
            raise ValueError(f"unknown trigger {trigger!r}")
        while True:
            coalesced = self._coalesce(trigger, source, detail)
            if coalesced is not None:
                return coalesced
            last, warning = self.last_retrain()  # outside the lock: an MLflow call
            verdict = evaluate_policy(self.config, trigger, now=self.clock(), last_retrain_at=last)
            with self._lock:
                if self._running is not None:
                    continue  # another request started a run meanwhile: coalesce into it
                if not verdict.allowed:
                    extra = {"retry_after_s": round(verdict.retry_after_s or 0, 1)}
                    self.audit.record(
                        verdict.decision, verdict.reason, trigger=trigger, source=source, **detail
                    )
                    return Submission(verdict.decision, verdict.reason, 200, extra)
                reason = "pipeline started" + (f"; {warning}" if warning else "")
                self._start(trigger)
                self.audit.record("ran", reason, phase="started", trigger=trigger, source=source, **detail)
                return Submission("ran", reason, 202)

    def _coalesce(self, trigger: str, source: str, detail: dict[str, Any]) -> Submission | None:
        with self._lock:
            if self._running is None:
                return None
            if self._pending is None:
                self._pending = trigger
                self._pending_sources = [source]
                reason = f"a {self._running} retrain is running: queued as its one follow-up"
            else:
                # The follow-up runs as the most urgent trigger waiting (contract.TRIGGER_PRIORITY).
                if trigger_priority(trigger) > trigger_priority(self._pending):
                    self._pending = trigger
                self._pending_sources.append(source)
                reason = f"a {self._running} retrain is running and a follow-up is queued: merged into it"
            self.audit.record(
                "coalesced", reason, trigger=trigger, source=source, running=self._running,
                follow_up=self._pending, **detail,
            )  # fmt: skip
            return Submission("coalesced", reason, 202, {"follow_up": self._pending})

    # -- the worker --------------------------------------------------------------------------------
    def _start(self, trigger: str) -> None:
        """Called with the lock held."""
        self._running = trigger
        self._idle.clear()
        self._worker = threading.Thread(target=self._work, args=(trigger,), name="ct-pipeline", daemon=True)
        self._worker.start()

    def _work(self, trigger: str) -> None:
        while True:
            try:
                outcome = self.runner(trigger)
            except Exception as exc:  # the runner itself broke (not the pipeline): audit, carry on
                log.exception("ct pipeline runner failed")
                outcome = RunOutcome("failed", -1, 0.0, reason=f"runner error: {exc}")
            self._finished(trigger, outcome)
            follow_up = self._next()
            if follow_up is None:
                return
            trigger = follow_up

    def _finished(self, trigger: str, outcome: RunOutcome) -> None:
        self.outcomes.append(outcome)
        if outcome.trained and trigger in ALERT_TRIGGERS:
            self._local_last_retrain = self.clock()
        fields = {
            "phase": "finished",
            "trigger": trigger,
            "outcome": outcome.status,
            "exit_code": outcome.exit_code,
            "duration_s": round(outcome.duration_s, 1),
            "pipeline_id": outcome.pipeline_id,
            "registered_version": outcome.registered_version,
            "promoted": outcome.promoted,
            "awaiting_approval": outcome.awaiting_approval,
            "log": outcome.log,
        }
        if outcome.status in ("success", "failed"):
            self.audit.record("ran", outcome.reason, **fields)
        elif outcome.reason.startswith(COOLDOWN_PREFIX):
            self.audit.record("cooled-down", outcome.reason, **fields)
        else:
            self.audit.record("skipped", outcome.reason, **fields)

    def _next(self) -> str | None:
        """Take the follow-up, if any, through the policy; return its trigger when it should run.

        `_running` stays set while deciding, so requests arriving meanwhile coalesce into a new
        follow-up, which the next loop iteration decides on.
        """
        while True:
            with self._lock:
                follow_up, sources = self._pending, self._pending_sources
                self._pending, self._pending_sources = None, []
                if follow_up is None:
                    self._running = None
                    self._idle.set()
                    return None
            last, warning = self.last_retrain()
            verdict = evaluate_policy(self.config, follow_up, now=self.clock(), last_retrain_at=last)
            with self._lock:
                if verdict.allowed:
                    self._running = follow_up
                    reason = "follow-up pipeline started" + (f"; {warning}" if warning else "")
                    self.audit.record(
                        "ran", reason, phase="started", trigger=follow_up, source="follow-up",
                        coalesced_from=sources,
                    )  # fmt: skip
                    return follow_up
                self.audit.record(
                    verdict.decision, verdict.reason, trigger=follow_up, source="follow-up",
                    coalesced_from=sources,
                )  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        """Status for /healthz."""
        last = self.outcomes[-1] if self.outcomes else None
        return {
            "running": self._running,
            "follow_up": self._pending,
            "last_outcome": asdict(last) if last else None,
        }
