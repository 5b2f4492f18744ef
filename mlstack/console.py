"""What a person running the pipeline reads: one line per stage, a progress indicator, errors in full.

Libraries talk a lot: MLflow prints "Downloading artifacts" tqdm bars, a "View run" link per run and
"Created version" lines, warns about cloudpickle for every model (models are cloudpickled on purpose:
docs/architecture.md), and Evidently, scikit-learn and pandas add warnings. By default (`StageReporter`
with `verbose=False`) everything a stage writes to stdout or stderr, and every log record, goes to
`<state_dir>/logs/pipeline.log`; the terminal gets the project's own lines: a header, one line per
stage with its duration, a progress indicator while a stage runs, what the runtime started
(`mlstack.progress.report`, routed here while a stage runs), and the summary, which prints the log's
path. Warnings of the project and errors of anyone still reach the terminal, and a failed stage shows
the end of the log, so nothing that explains a failure is hidden.
`--verbose` turns all of this off: every library line on the terminal, as before.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from mlstack import progress
from mlstack.logs import LOG_FORMAT

# Seconds between two "still running" lines when the output is not a terminal (Jenkins, a log file).
HEARTBEAT_S = 30.0
SPINNER = "|/-\\"
FAILURE_TAIL_LINES = 40


PROGRESS_BAR_ENV = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


@contextlib.contextmanager
def no_progress_bars() -> Iterator[None]:
    """No MLflow "Downloading artifacts" bar for a small internal download (a schema, an MLmodel file).

    MLflow reads the switch at each download; the previous value is put back afterwards.
    """
    saved = os.environ.get(PROGRESS_BAR_ENV)
    os.environ[PROGRESS_BAR_ENV] = "false"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(PROGRESS_BAR_ENV, None)
        else:
            os.environ[PROGRESS_BAR_ENV] = saved


class _ConsoleFilter(logging.Filter):
    """The terminal's share of the log records: the project's warnings, everyone's errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        ours = record.name.split(".", 1)[0] in {"mlstack", "mlstack_api", "mlstack_exporter"}
        return record.levelno >= (logging.WARNING if ours else logging.ERROR)


class _Status(logging.Handler):
    """Keeps the project's latest INFO message: the text next to the progress indicator."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.latest = ""

    def emit(self, record: logging.LogRecord) -> None:
        self.latest = record.getMessage().splitlines()[0][:80] if record.getMessage() else ""


class StageReporter:
    """Prints the pipeline's progress and keeps library output in a log file (unless verbose)."""

    def __init__(self, log_path: Path, *, verbose: bool = False, stream: TextIO | None = None) -> None:
        self.log_path = log_path
        self.verbose = verbose
        self.stream = stream or sys.stdout
        self.error_stream = sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._sink: TextIO | None = None
        self._status = _Status()
        self._lock = threading.Lock()
        self._line = ""  # the progress line currently drawn (tty only)

    # -- set-up -----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def session(self, *, fresh: bool) -> Iterator[StageReporter]:
        """Route logging for one CLI call: to the terminal (verbose) or to the log file (default)."""
        if self.verbose:
            logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
            yield self
            return
        os.environ.setdefault(PROGRESS_BAR_ENV, "false")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        sink = self.log_path.open("w" if fresh else "a", encoding="utf-8", buffering=1)
        self._sink = sink
        root = logging.getLogger()
        saved = (root.level, list(root.handlers))
        file_handler = logging.StreamHandler(sink)
        file_handler.setFormatter(logging.Formatter(LOG_FORMAT))
        console = logging.StreamHandler(self.error_stream)
        console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        console.addFilter(_ConsoleFilter())
        root.handlers = [file_handler, console]
        root.setLevel(logging.INFO)
        logging.captureWarnings(True)
        mlflow_loggers = _route_mlflow_logs_to_root()
        project = logging.getLogger("mlstack")
        project.addHandler(self._status)
        progress.route_to(self.note)
        try:
            yield self
        finally:
            progress.route_to(None)
            project.removeHandler(self._status)
            for logger, handlers, propagate in mlflow_loggers:
                logger.handlers, logger.propagate = handlers, propagate
            logging.captureWarnings(False)
            root.setLevel(saved[0])
            root.handlers = saved[1]
            self._sink = None
            sink.close()

    # -- one stage --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def stage(self, name: str, index: int, total: int) -> Iterator[None]:
        """Run one stage: its library output goes to the log, a progress indicator to the terminal."""
        if self.verbose or self._sink is None:
            yield
            return
        sink = self._sink
        prefix = f"[{index:>2}/{total}] {name:<13}"
        sink.write(f"\n===== stage {name} ({time.strftime('%Y-%m-%d %H:%M:%S')})\n")
        self._status.latest = ""
        done = threading.Event()
        started = time.monotonic()
        ticker = threading.Thread(target=self._tick, args=(prefix, started, done), daemon=True)
        ticker.start()
        try:
            with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
                yield
        finally:
            done.set()
            ticker.join(timeout=2)
            self._clear()

    @contextlib.contextmanager
    def quietly(self) -> Iterator[None]:
        """Library output of work between stages (recording the run in MLflow) to the log as well."""
        if self.verbose or self._sink is None:
            yield
            return
        with contextlib.redirect_stdout(self._sink), contextlib.redirect_stderr(self._sink):
            yield

    def _tick(self, prefix: str, started: float, done: threading.Event) -> None:
        frame = 0
        interval = 0.2 if self.tty else HEARTBEAT_S
        while not done.wait(interval):
            elapsed = time.monotonic() - started
            status = self._status.latest
            if self.tty:
                frame += 1
                self._draw(f"{prefix} {SPINNER[frame % len(SPINNER)]} {elapsed:5.0f}s  {status}")
            else:
                self._write(f"{prefix} ... {elapsed:.0f}s  {status}".rstrip())

    def finished(self, name: str, index: int, total: int, seconds: float, result: str) -> None:
        """The stage's one line: name, duration, what it did."""
        self._write(f"[{index:>2}/{total}] {name:<13} {seconds:6.1f}s  {result}")

    def failed(self, name: str, index: int, total: int, seconds: float, error: str) -> None:
        """The failure line, and the end of the log: what the libraries said before it failed."""
        self._write(f"[{index:>2}/{total}] {name:<13} {seconds:6.1f}s  FAILED: {error}")
        if self.verbose or not self.log_path.exists():
            return
        if self._sink is not None:
            self._sink.flush()
        tail = self.log_path.read_text(errors="replace").splitlines()[-FAILURE_TAIL_LINES:]
        self.error_stream.write(
            f"--- last {len(tail)} lines of {self.log_path}:\n" + "\n".join(tail) + "\n---\n"
        )
        self.error_stream.flush()

    def note(self, text: str) -> None:
        """A line of the project's own (runtime progress): to the terminal and to the log."""
        self._write(text)
        if self._sink is not None:
            self._sink.write(text + "\n")

    # -- drawing ----------------------------------------------------------------------------------

    def _draw(self, line: str) -> None:
        with self._lock:
            width = max(len(self._line), len(line))
            self.stream.write("\r" + line.ljust(width))
            self.stream.flush()
            self._line = line

    def _clear(self) -> None:
        with self._lock:
            if self._line:
                self.stream.write("\r" + " " * len(self._line) + "\r")
                self.stream.flush()
                self._line = ""

    def _write(self, line: str) -> None:
        with self._lock:
            if self._line:
                self.stream.write("\r" + " " * len(self._line) + "\r")
                self._line = ""
            self.stream.write(line + "\n")
            self.stream.flush()


def _route_mlflow_logs_to_root() -> list[tuple[logging.Logger, list[logging.Handler], bool]]:
    """MLflow gives its loggers a stderr handler of their own; send their records to ours instead.

    Returns what was changed, so the session can put it back.
    """
    changed = []
    for name in ("mlflow", "alembic", "huey"):
        logger = logging.getLogger(name)
        changed.append((logger, list(logger.handlers), logger.propagate))
        logger.handlers = []
        logger.propagate = True
    return changed
