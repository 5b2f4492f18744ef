"""In-memory snapshots the background refreshers publish and the /metrics collector reads."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from mlstack.drift import DriftResult
from mlstack.drift_report import DriftStatus

log = logging.getLogger(__name__)

Source = Literal["registry", "runs", "drift", "accuracy", "feedback"]
SOURCES: tuple[Source, ...] = ("registry", "runs", "drift", "accuracy", "feedback")


@dataclass(frozen=True)
class VersionInfo:
    """One registered model version and the test-set metrics of its training run (immutable)."""

    version: str
    run_id: str | None
    created_at: float
    metrics: dict[str, float]
    tags: dict[str, str]


@dataclass(frozen=True)
class PipelineRunInfo:
    """The last finished pipeline execution (a run in `<experiment>-pipeline`)."""

    run_id: str
    status: str
    trigger: str
    duration_s: float | None
    ended_at: float | None


@dataclass(frozen=True)
class RegistrySnapshot:
    """Registry and tracking state at one refresh."""

    model: str
    model_exists: bool
    versions: tuple[VersionInfo, ...]
    aliases: dict[str, str]
    champion: str | None
    challenger: str | None
    champion_since: float | None  # when the champion alias last moved (epoch seconds)
    pipeline: PipelineRunInfo | None
    taken_at: float

    def version(self, number: str) -> VersionInfo | None:
        return next((v for v in self.versions if v.version == number), None)


@dataclass(frozen=True)
class RunsSnapshot:
    """Active runs per experiment: a source of its own, so recounting many runs never delays the registry."""

    experiment_runs: dict[str, int]
    taken_at: float


@dataclass(frozen=True)
class DriftSnapshot:
    """The latest drift reading. Scores are present only when `status == "ok"`."""

    status: DriftStatus
    window_rows: int
    min_rows: int
    reference_version: str | None
    reference_hash: str | None
    result: DriftResult | None  # without its Evidently snapshot
    report_path: str | None
    taken_at: float


@dataclass(frozen=True)
class VersionAccuracy:
    """Live accuracy of one model version over the labelled window."""

    accuracy: float
    labelled: int


@dataclass(frozen=True)
class AccuracySnapshot:
    """Rolling live accuracy per model version."""

    model: str
    window: int
    per_version: dict[str, VersionAccuracy]
    taken_at: float


@dataclass(frozen=True)
class FeedbackSnapshot:
    """The quarantine check on the newest labelled predictions, and the quarantine table's size."""

    window: int  # exporter.feedback_window
    checked: bool  # False before the first champion: nothing to hold the rows to
    used: int
    excluded: int
    excluded_by_kind: dict[str, int]
    quarantined: int  # rows the quarantine table excludes now (the pipeline's and operators' record)
    reference_version: str | None
    taken_at: float


@dataclass
class SourceStatus:
    """Health of one background source: what the staleness metrics are made of."""

    last_success: float | None = None
    last_attempt: float | None = None
    last_duration_s: float | None = None
    errors_total: int = 0
    last_error: str | None = None
    up: bool = False


@dataclass
class ExporterState:
    """Everything a scrape needs; refreshers swap whole snapshots, so a scrape never sees half an update."""

    registry: RegistrySnapshot | None = None
    runs: RunsSnapshot | None = None
    drift: DriftSnapshot | None = None
    accuracy: AccuracySnapshot | None = None
    feedback: FeedbackSnapshot | None = None
    status: dict[str, SourceStatus] = field(default_factory=lambda: {s: SourceStatus() for s in SOURCES})
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def publish(self, source: Source, snapshot: Any) -> None:
        setattr(self, source, snapshot)

    def run_refresh(self, source: Source, refresh: Callable[[], Any]) -> bool:
        """Run one refresh; publish its snapshot on success, count the error otherwise (never raises)."""
        started = time.time()
        clock = time.perf_counter()
        try:
            snapshot = refresh()
        except Exception as exc:
            with self._lock:
                status = self.status[source]
                status.last_attempt = started
                status.last_duration_s = time.perf_counter() - clock
                status.errors_total += 1
                status.last_error = f"{type(exc).__name__}: {exc}"[:500]
                status.up = False
            log.warning("%s refresh failed: %s", source, exc)
            return False
        self.publish(source, snapshot)
        with self._lock:
            status = self.status[source]
            status.last_attempt = started
            status.last_success = time.time()
            status.last_duration_s = time.perf_counter() - clock
            status.last_error = None
            status.up = True
        return True

    def status_copy(self) -> dict[str, SourceStatus]:
        """A consistent copy of the per-source status, for a scrape or the summary page."""
        with self._lock:
            return {name: SourceStatus(**vars(status)) for name, status in self.status.items()}
