"""The pipeline's terminal output: a line per stage, library output in the log file, errors in view."""

from __future__ import annotations

import io
import logging
import sys
import time
import warnings
from pathlib import Path

import pytest

from mlstack import progress
from mlstack.console import StageReporter


def run_stage(reporter: StageReporter, fail: bool = False) -> None:
    with reporter.stage("train", 4, 12):
        print("Downloading artifacts: 100%|██████████| 7/7")  # a library's tqdm bar
        sys.stderr.write("🏃 View run random_forest at: http://127.0.0.1:5000/#/runs/1\n")
        logging.getLogger("mlflow.sklearn").warning(
            "Saving scikit-learn models in the cloudpickle format ..."
        )
        warnings.warn("a library's deprecation", DeprecationWarning, stacklevel=1)
        logging.getLogger("mlstack.train").info("trained random_forest: f1_weighted=1.0000")
        progress.report("  api: started")  # the project's own line, while diverted
        if fail:
            raise RuntimeError("boom")


def test_default_keeps_library_output_in_the_log_and_shows_the_stage_line(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    log = tmp_path / "logs" / "pipeline.log"
    reporter = StageReporter(log, stream=out)
    reporter.error_stream = err
    with reporter.session(fresh=True):
        run_stage(reporter)
        reporter.finished("train", 4, 12, 12.34, "random_forest f1_weighted=1.0000")
        logging.getLogger("mlstack.pipeline").warning("could not record the pipeline run")
        logging.getLogger("mlflow.store").error("the tracking server answered 500")
        logging.getLogger("mlflow.store").warning("a retry")
    shown = out.getvalue()
    assert shown == "  api: started\n[ 4/12] train           12.3s  random_forest f1_weighted=1.0000\n"
    # Our warnings and everyone's errors stay visible; library warnings do not.
    assert err.getvalue().splitlines() == [
        "WARNING mlstack.pipeline: could not record the pipeline run",
        "ERROR mlflow.store: the tracking server answered 500",
    ]
    logged = log.read_text()
    for line in ("Downloading artifacts", "View run", "cloudpickle", "deprecation", "trained random_forest"):
        assert line in logged, line
    assert "  api: started" in logged
    # The session put logging and progress back.
    assert progress._route is None and not any(
        isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) is err
        for h in logging.getLogger().handlers
    )


def test_a_failed_stage_shows_the_error_and_the_end_of_the_log(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    log = tmp_path / "pipeline.log"
    reporter = StageReporter(log, stream=out)
    reporter.error_stream = err
    with reporter.session(fresh=True):
        with pytest.raises(RuntimeError, match="boom"):
            run_stage(reporter, fail=True)
        reporter.failed("train", 4, 12, 0.5, "boom")
    assert "[ 4/12] train            0.5s  FAILED: boom" in out.getvalue()
    assert f"lines of {log}" in err.getvalue() and "View run random_forest" in err.getvalue()


def test_verbose_shows_everything_where_it_was_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reporter = StageReporter(tmp_path / "pipeline.log", verbose=True)
    with reporter.session(fresh=True):
        with reporter.stage("train", 4, 12):
            print("Downloading artifacts: 100%")
        progress.report("  api: started")
    assert "Downloading artifacts" in capsys.readouterr().out
    assert not (tmp_path / "pipeline.log").exists()


def test_a_terminal_gets_a_progress_indicator_that_is_cleared(tmp_path: Path) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Terminal()
    reporter = StageReporter(tmp_path / "pipeline.log", stream=out)
    with reporter.session(fresh=True), reporter.stage("train", 4, 12):
        logging.getLogger("mlstack.train").info("trained random_forest")
        deadline = time.monotonic() + 10  # the indicator redraws every 0.2 s; wait until it showed the status
        while "trained random_forest" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.05)
    drawn = out.getvalue()
    assert "\r[ 4/12] train" in drawn and "trained random_forest" in drawn
    assert drawn.endswith("\r")  # the indicator line is wiped before the stage's own line
