"""The feedback token: where clients and the local runtime find it, and its first-run generation.

`POST /feedback` writes labels into the next training set, so it takes a bearer token of its own
(`MLSTACK_FEEDBACK_TOKEN`), separate from the admin token. Compose and Kubernetes take it from their
secrets; the local runtime generates one into `<state_dir>/secrets/feedback-token` (mode 0600) on its
first run, so `make pipeline` works with no setup and the simulator finds it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from mlstack.config import Config
from mlstack.contract import FEEDBACK_TOKEN_ENV, STATE_FEEDBACK_TOKEN


def feedback_token_file(config: Config) -> Path:
    """Where the local runtime keeps the generated feedback token."""
    return config.state_dir / STATE_FEEDBACK_TOKEN


def feedback_token(config: Config, environ: Mapping[str, str] | None = None) -> str | None:
    """The feedback token a client should send: $MLSTACK_FEEDBACK_TOKEN, else the local runtime's file."""
    env = os.environ if environ is None else environ
    token = env.get(FEEDBACK_TOKEN_ENV, "").strip()
    if token:
        return token
    path = feedback_token_file(config)
    if path.exists():
        return path.read_text().strip() or None
    return None


def ensure_feedback_token(
    config: Config, environ: Mapping[str, str] | None = None
) -> tuple[str, Path | None]:
    """The token the local predictor gets, generating it on first use.

    Returns:
        (token, path of a newly generated token file, or None when the token existed already).
    """
    found = feedback_token(config, environ)
    if found:
        return found, None
    path = feedback_token_file(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    return token, path
