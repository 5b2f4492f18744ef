"""Shared benchmark plumbing: targets, machine facts, bounded child processes."""

from __future__ import annotations

import io
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from mlstack.config import REPO_ROOT

VERSIONED_PACKAGES = ("mlflow", "scikit-learn", "onnxruntime", "fastapi", "uvicorn", "evidently", "numpy")


@dataclass(frozen=True)
class Target:
    """One pass/fail line: what was promised, what was measured (or why it was skipped)."""

    name: str
    goal: str
    measured: str
    passed: bool
    skipped: bool = False  # not measurable in this run (e.g. a feature not on main yet); `measured` says why

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages."""
    return [round(value, 2) for value in os.getloadavg()]


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, or the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def tool_version(argv: Sequence[str]) -> str:
    """First output line of `argv` (e.g. `wrk --version`), or 'unavailable'."""
    try:
        out = subprocess.run(list(argv), capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unavailable"
    lines = (out.stdout or out.stderr).strip().splitlines()
    return lines[0].strip() if lines else "unavailable"


def git_revision() -> str:
    return tool_version(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"])


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on: cores, CPU, load, memory and the versions that matter."""
    memory_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kb = int(line.split()[1])
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu_model": cpu_model(),
        "memory_gib": round(memory_kb / 1024 / 1024, 1),
        "load_average": load_average(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": {name: package_version(name) for name in VERSIONED_PACKAGES},
        "wrk": tool_version(["wrk", "--version"]).split(" Copyright")[0],
        "git": git_revision(),
    }


@contextmanager
def library_output_hidden() -> Iterator[None]:
    """Hide what libraries print (MLflow's "Created version ..."); shown after all if the block fails."""
    out, err = io.StringIO(), io.StringIO()
    try:
        with redirect_stdout(out), redirect_stderr(err):
            yield
    except BaseException:
        sys.stderr.write(out.getvalue() + err.getvalue())
        raise


@dataclass
class Child:
    """A child process in its own session (so stopping it stops its workers too)."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group at once (every worker), as the OOM killer would."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        self.process.wait(timeout=30)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM the process group (graceful), SIGKILL after `timeout`."""
        if self.process.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.process.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue


@contextmanager
def child_process(
    name: str,
    argv: Sequence[str],
    log: Path,
    env: Mapping[str, str],
    ready: Callable[[], bool],
    timeout: float,
    cwd: Path = REPO_ROOT,
) -> Iterator[Child]:
    """Start `argv` in `cwd`, wait until `ready()` is true (bounded), yield it, always stop it."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as sink:
        process = subprocess.Popen(
            list(argv),
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
        )
    child = Child(name, process, log)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if not child.alive():
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{child.log_tail()}")
            try:
                if ready():
                    break
            except Exception:  # not listening yet
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not ready after {timeout:.0f}s:\n{child.log_tail()}")
            time.sleep(0.3)
        yield child
    finally:
        child.stop()


def clean_environ(**extra: str) -> dict[str, str]:
    """This process's environment without MLSTACK__/MLflow overrides, plus `extra`."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("MLSTACK__") and key not in {"MLFLOW_TRACKING_URI", "MLSTACK_CONFIG"}
    }
    env.update(extra)
    return env


def verdict(target: dict[str, Any]) -> str:
    """PASS, FAIL or SKIP for a target's dict (as in the results JSON)."""
    if target.get("skipped"):
        return "SKIP"
    return "PASS" if target["passed"] else "FAIL"
