"""Drift simulator: realistic predictor traffic with optional drift, plus delayed ground-truth feedback.

Rows are sampled per class from the base dataset (class frequencies kept) with Gaussian noise of
`noise` feature standard deviations. A drifted row has the chosen features shifted by `magnitude`
standard deviations. Drift patterns give the share of drifted traffic over time:

* none: 0; sudden: 1 from `onset_s`; gradual: rises linearly from 0 at `onset_s` to 1 after `ramp_s`;
  recurring: 1 and 0 alternating every `period_s` from `onset_s`.

The labelling rule gives each row its true class: the source class for clean rows, and
`(source class + label_shift) % n_classes` for drifted rows (concept drift: the old model is wrong
there; `label_shift=0` makes it covariate drift only). Feedback for a share of predictions is posted to
`/feedback` after `feedback_delay_s`, as a labelling team would.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlparse

import numpy as np
import requests

from mlstack.contract import PREDICT_PATH
from mlstack.data import Dataset

Pattern = Literal["none", "sudden", "gradual", "recurring"]
PATTERNS: tuple[Pattern, ...] = ("none", "sudden", "gradual", "recurring")
MAX_REQUESTS = 100_000
MAX_DURATION_S = 24 * 3600.0
# Consecutive failed requests after which the simulator gives up (the predictor is gone).
MAX_CONSECUTIVE_ERRORS = 20


class SimulationError(RuntimeError):
    """The simulation cannot run (bad target, bad parameters, predictor unreachable)."""


def check_target(url: str, allow_remote: bool = False) -> None:
    """Refuse anything but a loopback http(s) URL unless `allow_remote`."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise SimulationError(f"target {url!r} is not an http(s) URL")
    if allow_remote:
        return
    host = parsed.hostname
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise SimulationError(
            f"target host {host!r} is not loopback; the simulator only sends to 127.0.0.1 unless "
            "--allow-remote is given"
        )


@dataclass(frozen=True)
class DriftSpec:
    """Which features drift, how far, when, and how the drifted rows are labelled."""

    pattern: Pattern = "sudden"
    features: tuple[str, ...] = ()  # empty: every feature
    magnitude: float = 3.0  # in feature standard deviations
    onset_s: float = 0.0
    ramp_s: float | None = None  # gradual: seconds to full drift (default: the rest of the run)
    period_s: float = 30.0  # recurring: length of each drifted / clean phase
    label_shift: int = 1

    def __post_init__(self) -> None:
        if self.pattern not in PATTERNS:
            raise SimulationError(f"unknown pattern {self.pattern!r}; one of {', '.join(PATTERNS)}")
        if not math.isfinite(self.magnitude):
            raise SimulationError("magnitude must be a finite number of standard deviations")
        if self.onset_s < 0 or self.period_s <= 0 or (self.ramp_s is not None and self.ramp_s <= 0):
            raise SimulationError("onset must be >= 0; period and ramp must be > 0")

    def share(self, t: float, duration_s: float) -> float:
        """Share of traffic drifted `t` seconds into a run of `duration_s` seconds."""
        since = t - self.onset_s
        if self.pattern == "none" or since < 0:
            return 0.0
        if self.pattern == "sudden":
            return 1.0
        if self.pattern == "gradual":
            ramp = self.ramp_s or max(duration_s - self.onset_s, 1e-9)
            return min(1.0, since / ramp)
        return 1.0 if int(since // self.period_s) % 2 == 0 else 0.0


@dataclass
class Batch:
    """Sampled rows with their source class, drift flag and true label (the labelling rule)."""

    instances: list[dict[str, Any]]  # numbers, category strings, None for missing
    source_class: np.ndarray
    drifted: np.ndarray
    true_label: np.ndarray


class TrafficGenerator:
    """Samples rows like the base data, drifted on demand, and labels them.

    Numeric features get noise and, when drifted, a shift; categorical features keep the sampled
    base row's category and, when drifted, take the next category of the column (cyclically).
    Missing values stay missing (sent as null).
    """

    def __init__(self, dataset: Dataset, spec: DriftSpec, *, noise: float = 0.1, seed: int = 0) -> None:
        from mlstack.feature_types import infer_kind
        from mlstack.schema import NUMERIC, category_text, numeric_values

        self.names = [str(c) for c in dataset.features.columns]
        unknown = sorted(set(spec.features) - set(self.names))
        if unknown:
            raise SimulationError(f"unknown feature(s) {unknown}; features: {', '.join(self.names)}")
        if noise < 0:
            raise SimulationError("noise must be >= 0")
        self.spec = spec
        self.noise = noise
        self.rng = np.random.default_rng(seed)
        frame = dataset.features
        self.numeric = [n for n in self.names if infer_kind(frame[n]) == NUMERIC]
        self.categorical = [n for n in self.names if n not in self.numeric]
        self.values = np.column_stack(
            [numeric_values(frame[n]).to_numpy() for n in self.numeric] or [np.empty((len(frame), 0))]
        )
        self.categories = {n: sorted(category_text(frame[n]).dropna().unique()) for n in self.categorical}
        self.labels = np.column_stack(
            [category_text(frame[n]).to_numpy() for n in self.categorical]
            or [np.empty((len(frame), 0), dtype=object)]
        )
        self.classes = dataset.target.to_numpy(dtype=int)
        self.n_classes = int(self.classes.max()) + 1
        with np.errstate(all="ignore"):
            self.std = np.nan_to_num(np.nanstd(self.values, axis=0)) if self.numeric else np.zeros(0)
            low = np.nanmin(self.values, axis=0) if self.numeric else np.zeros(0)
        # Features that are never negative in the base data (amounts, ratios) stay non-negative.
        self.lower = np.where(low >= 0, 0.0, -np.inf)
        drifting = spec.features or tuple(self.names)
        self.shift = np.zeros(len(self.numeric))
        for name in drifting:
            if name in self.numeric:
                index = self.numeric.index(name)
                self.shift[index] = spec.magnitude * self.std[index]
        self.drifting_categorical = [
            n for n in drifting if n in self.categorical and len(self.categories[n]) > 1
        ]

    @property
    def drifted_features(self) -> list[str]:
        numeric = [n for n, s in zip(self.numeric, self.shift, strict=True) if s != 0]
        return [n for n in self.names if n in numeric or n in self.drifting_categorical]

    def plausibility_warning(self) -> str | None:
        """A note when the shift leaves the band validate-data accepts (the retrain would be refused)."""
        from mlstack.data_validation import RANGE_SLACK

        with np.errstate(all="ignore"):
            span = np.nanmax(self.values, axis=0) - np.nanmin(self.values, axis=0)
        too_far = [
            n for n, s, w in zip(self.numeric, self.shift, span, strict=True) if abs(s) > RANGE_SLACK * w
        ]
        if not too_far:
            return None
        return (
            f"a {self.spec.magnitude:g}-std shift moves {', '.join(too_far)} beyond the range validate-data "
            "accepts (training range +/- one range): a retrain on this feedback would be refused"
        )

    def sample(self, n: int, drifted_share: float) -> Batch:
        """`n` rows: classes drawn with the base frequencies, a base row of that class plus noise."""
        picks = self.rng.integers(0, len(self.values), n)
        rows = self.values[picks] + self.rng.normal(0.0, self.noise, (n, len(self.numeric))) * self.std
        drifted = self.rng.random(n) < drifted_share
        rows[drifted] += self.shift
        rows = np.maximum(rows, self.lower)
        labels = self.labels[picks].copy()
        for name in self.drifting_categorical:
            column = self.categorical.index(name)
            known = self.categories[name]
            for row in np.flatnonzero(drifted):
                value = labels[row, column]
                if isinstance(value, str):  # a missing value stays missing
                    labels[row, column] = (
                        known[(known.index(value) + 1) % len(known)] if value in known else value
                    )
        source = self.classes[picks]
        label = np.where(drifted, (source + self.spec.label_shift) % self.n_classes, source)
        instances = []
        for number_row, label_row in zip(rows, labels, strict=True):
            instance: dict[str, Any] = {
                name: None if math.isnan(value) else float(value)
                for name, value in zip(self.numeric, number_row, strict=True)
            }
            instance.update(
                (name, value if isinstance(value, str) else None)
                for name, value in zip(self.categorical, label_row, strict=True)
            )
            instances.append({name: instance[name] for name in self.names})
        return Batch(instances, source, drifted, label)


@dataclass
class SimulationReport:
    """What was sent and how the predictor did against the labelling rule."""

    requests: int = 0
    instances: int = 0
    drifted: int = 0
    errors: int = 0
    feedback_sent: int = 0
    feedback_failed: int = 0
    feedback_error: str | None = None  # the last refusal of a label (e.g. 401: no feedback token)
    correct: int = 0
    correct_drifted: int = 0
    versions: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    stopped_early: str | None = None

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.instances if self.instances else None

    @property
    def drifted_accuracy(self) -> float | None:
        return self.correct_drifted / self.drifted if self.drifted else None

    def line(self) -> str:
        """One progress line."""

        def pct(value: float | None) -> str:
            return "-" if value is None else f"{value:.2f}"

        versions = ",".join(f"v{v}:{n}" for v, n in sorted(self.versions.items()))
        refused = f"feedback_refused={self.feedback_failed} " if self.feedback_failed else ""
        return (
            f"t={self.elapsed_s:5.1f}s requests={self.requests} rows={self.instances} "
            f"drifted={self.drifted} feedback={self.feedback_sent} {refused}errors={self.errors} "
            f"accuracy={pct(self.accuracy)} drifted_accuracy={pct(self.drifted_accuracy)} served={versions}"
        )


def predict(
    session: requests.Session, url: str, batch: Batch, timeout: float = 10.0
) -> tuple[list[dict[str, Any]], str]:
    """POST one batch to /predict; return the predictions and the serving model version."""
    response = session.post(f"{url}{PREDICT_PATH}", json={"instances": batch.instances}, timeout=timeout)
    if response.status_code != 200:
        raise SimulationError(f"/predict answered {response.status_code}: {response.text[:300]}")
    body = response.json()
    return body["predictions"], str(body["model"]["version"])


def probe_accuracy(url: str, generator: TrafficGenerator, rows: int, drifted_share: float) -> float:
    """Accuracy of the served model on `rows` fresh rows against the labelling rule (no feedback sent)."""
    batch = generator.sample(rows, drifted_share)
    with requests.Session() as session:
        predictions, _ = predict(session, url.rstrip("/"), batch)
    labels = np.array([p["label"] for p in predictions])
    return float((labels == batch.true_label).mean())


@dataclass(frozen=True)
class TrafficPlan:
    """How much traffic to send, in what batches, and how much of it gets a (delayed) label.

    `feedback_token` is the predictor's feedback bearer token (`mlstack.tokens.feedback_token`);
    without it every label is refused and counted in `feedback_failed`.
    """

    rate: float  # requests per second
    duration_s: float
    batch_size: int = 1
    feedback_share: float = 1.0
    feedback_delay_s: float = 2.0
    max_requests: int | None = None
    timeout: float = 10.0  # per HTTP request
    feedback_token: str | None = field(default=None, repr=False)

    def check(self) -> None:
        """Refuse a plan that is not bounded in count and time (SimulationError)."""
        if not 0 < self.rate <= 1000:
            raise SimulationError("rate must be in (0, 1000] requests per second")
        if not 0 < self.duration_s <= MAX_DURATION_S:
            raise SimulationError(f"duration must be in (0, {MAX_DURATION_S:g}] seconds")
        if self.batch_size < 1 or not 0 <= self.feedback_share <= 1 or self.feedback_delay_s < 0:
            raise SimulationError("batch size must be >= 1, feedback share in [0, 1], delay >= 0")


def run_simulation(
    url: str,
    generator: TrafficGenerator,
    plan: TrafficPlan,
    *,
    progress: Callable[[str], None] | None = print,
    progress_every_s: float = 5.0,
    should_stop: Callable[[], bool] | None = None,
) -> SimulationReport:
    """Send `plan.rate` requests per second for `plan.duration_s` seconds (at most `plan.max_requests`),
    then the remaining feedback (at most `plan.feedback_delay_s` later). Bounded in count and time."""
    plan.check()
    rate, duration_s, batch_size = plan.rate, plan.duration_s, plan.batch_size
    feedback_share, feedback_delay_s, timeout = plan.feedback_share, plan.feedback_delay_s, plan.timeout
    feedback_token = plan.feedback_token
    limit = min(plan.max_requests or MAX_REQUESTS, MAX_REQUESTS, math.ceil(rate * duration_s))
    url = url.rstrip("/")
    report = SimulationReport()
    due: deque[tuple[float, str, int]] = deque()  # (when, prediction id, true label), in time order
    auth = {"Authorization": f"Bearer {feedback_token}"} if feedback_token else {}
    consecutive_errors = 0
    started = time.monotonic()
    next_progress = started + progress_every_s

    def send_feedback(until: float) -> None:
        while due and due[0][0] <= until:
            _, prediction_id, label = due.popleft()
            try:
                answer = session.post(
                    f"{url}/feedback",
                    json={"prediction_id": prediction_id, "true_label": label},
                    headers=auth,
                    timeout=timeout,
                )
                ok = answer.status_code == 200
                if not ok:
                    report.feedback_error = f"/feedback answered {answer.status_code}: {answer.text[:200]}"
            except requests.RequestException as exc:
                ok = False
                report.feedback_error = f"/feedback failed: {exc}"
            report.feedback_sent += ok
            report.feedback_failed += not ok

    with requests.Session() as session:
        for index in range(limit):
            planned = started + index / rate
            now = time.monotonic()
            if now - started >= duration_s:
                break
            if should_stop is not None and should_stop():
                report.stopped_early = "stopped"
                break
            send_feedback(now)
            if planned > time.monotonic():
                time.sleep(planned - time.monotonic())
            t = time.monotonic() - started
            batch = generator.sample(batch_size, generator.spec.share(t, duration_s))
            report.requests += 1
            try:
                predictions, version = predict(session, url, batch, timeout)
            except (requests.RequestException, SimulationError, KeyError, ValueError) as exc:
                report.errors += 1
                consecutive_errors += 1
                if consecutive_errors >= MAX_CONSECUTIVE_ERRORS:
                    report.stopped_early = f"{consecutive_errors} consecutive errors, last: {exc}"
                    break
                continue
            consecutive_errors = 0
            report.versions[version] = report.versions.get(version, 0) + len(predictions)
            for prediction, drifted, label in zip(predictions, batch.drifted, batch.true_label, strict=True):
                hit = int(prediction["label"]) == int(label)
                report.instances += 1
                report.drifted += bool(drifted)
                report.correct += hit
                report.correct_drifted += hit and bool(drifted)
                if generator.rng.random() < feedback_share:
                    due.append((time.monotonic() + feedback_delay_s, prediction["id"], int(label)))
            if progress is not None and time.monotonic() >= next_progress:
                report.elapsed_s = time.monotonic() - started
                progress(report.line())
                next_progress += progress_every_s
        # The last labels arrive after their delay; this waits at most `feedback_delay_s`.
        if due and consecutive_errors < MAX_CONSECUTIVE_ERRORS:  # not when the predictor is gone
            time.sleep(max(0.0, due[-1][0] - time.monotonic()))
            send_feedback(time.monotonic())
    report.elapsed_s = time.monotonic() - started
    if report.requests and report.errors == report.requests:
        raise SimulationError(f"every request to {url}/predict failed ({report.stopped_early or 'errors'})")
    if progress is not None:
        progress(report.line())
    return report
