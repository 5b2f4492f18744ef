"""Find the system binaries and npm packages tests need: skip locally when absent, fail in CI."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import NoReturn

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def in_ci() -> bool:
    """True when running under CI (CI=true), where a missing binary is an error."""
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def skip_or_fail(message: str) -> NoReturn:
    """Skip the test with `message` locally; fail it under CI, where everything must be installed.

    The one place that makes this decision, so `make test` passes on any machine while CI (which
    installs everything, .ci/run) can never go green by skipping.
    """
    __tracebackhide__ = True  # report the skip or failure at the test that asked
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def require_binary(name: str, *alternatives: str) -> str:
    """Return the path of the first binary found; skip (locally) or fail (CI) if none is.

    `alternatives` are other names of the SAME program (Debian's `prometheus-alertmanager` is
    upstream's `alertmanager`), never a different tool: where several tools can each do the job and
    must be shown to work (compose: `docker compose` or `docker-compose`), use a helper that runs them
    (tests/support/compose.require_compose); a bare `docker` client is no compose.
    """
    __tracebackhide__ = True  # report the skip or failure at the test that asked
    for candidate in (name, *alternatives):
        path = shutil.which(candidate)
        if path:
            return path
    skip_or_fail(f"required binary {name!r} not found on PATH (.ci/run installs it)")


def require_node_packages(*packages: str) -> str:
    """The `node` binary, once the npm packages are installed in the repo; skip (locally) or fail (CI)."""
    __tracebackhide__ = True  # report the skip or failure at the test that asked
    node = require_binary("node")
    missing = [p for p in packages if not (REPO_ROOT / "node_modules" / p / "package.json").is_file()]
    if missing:
        skip_or_fail(f"npm packages {missing} not installed: run `npm ci` in {REPO_ROOT} (.ci/run does)")
    return node


def lightgbm_load_error() -> str | None:
    """Why the locked `lightgbm` cannot load here (its wheel needs the system's OpenMP runtime), or None.

    A fresh machine or slim image may lack libgomp1: the product then fails the LightGBM candidate
    alone with an install hint, and the tests that train the customers example expect exactly that
    instead of skipping. In CI, where .ci/run's machine has it, a load failure is an error.
    """
    try:
        import lightgbm  # noqa: F401
    except ImportError as exc:
        return f"lightgbm is not installed: {exc}"
    except OSError as exc:
        from mlstack.preprocessing import native_library_hint

        return f"lightgbm is installed but cannot load: {native_library_hint(exc)}"
    return None


def expect_lightgbm_failure() -> bool:
    """True when LightGBM cannot load on this machine (so its candidate is expected to fail alone).

    Fails the calling test under CI: CI machines must be able to train every example candidate.
    """
    __tracebackhide__ = True
    reason = lightgbm_load_error()
    if reason is None:
        return False
    if in_ci():
        pytest.fail(f"{reason} (CI must train every candidate: install libgomp1)", pytrace=False)
    return True
