"""The variables jenkins/casc.yaml reads exist in the container compose starts, and users can find them.

`docker-compose config` (the real compose CLI) renders the jenkins service's environment from a test
.env; every `${VAR}` JCasC substitutes must be set there (else it silently becomes "" or the default,
whatever the user put in .env) and be documented in .env.example.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlstack.config import REPO_ROOT
from tests.support.compose import COMPOSE_FILE, require_compose, write_env_file
from tests.support.jenkins import casc
from tests.support.jenkins.harness import run_seed_job

pytestmark = pytest.mark.integration


def jenkins_service_env(env_file: Path) -> dict[str, str]:
    """The jenkins service's environment as compose renders it (profile jenkins)."""
    compose = require_compose()
    done = subprocess.run(
        [*compose, "-f", str(COMPOSE_FILE), "-p", "mlstack-casc", "--env-file", str(env_file),
         "--profile", "jenkins", "config"],
        capture_output=True, text=True, check=False, cwd=REPO_ROOT, timeout=120,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(env_file.parent), "PWD": str(REPO_ROOT)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rendered: dict[str, Any] = yaml.safe_load(done.stdout)
    return {k: str(v) for k, v in rendered["services"]["jenkins"]["environment"].items()}


def documented() -> set[str]:
    """Names .env.example sets or shows commented out (`NAME=` / `# NAME=`)."""
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", (REPO_ROOT / ".env.example").read_text(), re.M))


def test_every_casc_variable_is_given_by_compose_and_documented(tmp_path: Path) -> None:
    write_env_file(tmp_path / ".env")
    env = jenkins_service_env(tmp_path / ".env")
    references = casc.references(casc.text())
    assert {"JENKINS_ADMIN_PASSWORD", "MLSTACK_WEBHOOK_TOKEN", "MLSTACK_REPO_URL"} <= set(references)
    assert [r for r in references if r not in env] == [], "casc.yaml reads variables compose does not pass"
    assert [r for r in references if r not in documented()] == [], ".env.example does not document them"
    resolved = casc.resolve(casc.text(), env)
    assert resolved.unresolved == ()


def test_what_a_user_sets_in_env_reaches_the_seeded_job(tmp_path: Path) -> None:
    """.env -> compose -> the container -> JCasC -> Job DSL: the job builds the repository the user named."""
    url, branch = "https://github.com/example/mlstack.git", "release"
    write_env_file(
        tmp_path / ".env", MLSTACK_REPO_URL=url, MLSTACK_REPO_BRANCH=branch, JENKINS_ADMIN_USER="ops"
    )
    env = jenkins_service_env(tmp_path / ".env")
    (job,) = run_seed_job(casc.seed_script(env))
    assert job["definition"]["git"] == {
        "remotes": [{"url": url, "credentials": None}],
        "branches": [f"*/{branch}"],
    }
    (admin,) = yaml.safe_load(casc.resolve(casc.text(), env).text)["jenkins"]["securityRealm"]["local"][
        "users"
    ]
    assert admin["id"] == "ops"
    assert casc.string_credentials(env)["mlstack-webhook-token"] == env["MLSTACK_WEBHOOK_TOKEN"]
