"""Find the system binaries integration tests need: skip locally when absent, fail in CI."""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest


def in_ci() -> bool:
    """True when running under CI (CI=true), where a missing binary is an error."""
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def unavailable(reason: str) -> NoReturn:
    """A test's system requirement is missing: skip with `reason` locally, fail with it in CI.

    The one place that makes this decision, so `make test` passes on any machine while CI (which
    installs everything, .ci/run) can never go green by skipping.
    """
    __tracebackhide__ = True  # report the skip or failure at the test that asked
    if in_ci():
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


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
    unavailable(f"required binary {name!r} not found on PATH (.ci/run installs it)")
