"""Find the system binaries integration tests need: skip locally when absent, fail in CI."""

from __future__ import annotations

import os
import shutil

import pytest


def in_ci() -> bool:
    """True when running under CI (CI=true), where a missing binary is an error."""
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_binary(name: str, *alternatives: str) -> str:
    """Return the path of the first binary found; skip (locally) or fail (CI) if none is."""
    for candidate in (name, *alternatives):
        path = shutil.which(candidate)
        if path:
            return path
    message = f"required binary {name!r} not found on PATH (.ci/run installs it)"
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)
