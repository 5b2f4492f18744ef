"""The Jenkins controller as code: Jenkinsfile lint (CodeNarc), JCasC, seed job, plugins, image.

Jenkins itself cannot run here; these checks are static but use the real tools: npm-groovy-lint
(CodeNarc on Java 17) and hadolint. `npm ci` installs npm-groovy-lint from package-lock.json.
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
import yaml

from tests.support import jenkinsfile as jf
from tests.support.binaries import require_binary, unavailable

REPO = jf.REPO_ROOT
JENKINS_DIR = REPO / "jenkins"
CASC = JENKINS_DIR / "casc.yaml"
DOCKERFILE = JENKINS_DIR / "Dockerfile"
GROOVY_LINT = REPO / "node_modules" / ".bin" / "npm-groovy-lint"
TEXT = jf.strip_comments(jf.JENKINSFILE.read_text())

# Keys whose values are secrets: each must be a bare `${VAR}` reference, never a literal or a default.
SECRET_KEY = re.compile(r"password|secret|token|credential|apikey|api_key|privatekey", re.I)
ENV_REFERENCE = re.compile(r"\$\{[A-Z][A-Z0-9_]*\}")


def _groovy_lint() -> str:
    """The installed npm-groovy-lint: skip locally when `npm ci` has not run, fail in CI."""
    __tracebackhide__ = True  # report the skip or failure at the test that asked
    require_binary("node")
    require_binary("java")
    if not GROOVY_LINT.exists():
        unavailable(f"{GROOVY_LINT} missing: run `npm ci` in {REPO}")
    return str(GROOVY_LINT)


def _lint(paths: list[Path], failon: str) -> tuple[int, dict[str, Any]]:
    """Run CodeNarc through npm-groovy-lint with the repo's .groovylintrc.json; exit code and JSON report.

    The files must share one directory (CodeNarc scans from their common base directory).
    """
    (folder,) = {p.parent for p in paths}
    command = [_groovy_lint(), "--noserver", "--failon", failon, "--config", str(REPO), "--output", "json"]
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


def _casc() -> dict[str, Any]:
    return yaml.safe_load(CASC.read_text())


def _seed_script() -> str:
    (job,) = _casc()["jobs"]
    return str(job["script"])


def test_jenkinsfile_and_seed_job_pass_codenarc(tmp_path: Path) -> None:
    """The Jenkinsfile is clean at every level (errors, warnings, infos); the Job DSL script parses."""
    pipeline = tmp_path / "Jenkinsfile"
    pipeline.write_text(jf.JENKINSFILE.read_text())
    seed = tmp_path / "seed-job.groovy"
    seed.write_text(_seed_script())
    code, report = _lint([pipeline, seed], "error")
    assert code == 0, _findings(report, pipeline, {"error"}) + _findings(report, seed, {"error"})
    assert report["summary"]["totalFilesLinted"] == 2
    assert _findings(report, pipeline, {"error", "warning", "info"}) == []
    assert _findings(report, seed, {"error"}) == []


def test_groovy_lint_fails_on_a_broken_pipeline(tmp_path: Path) -> None:
    """The lint check can fail: a syntax error gives a non-zero exit and is reported as such."""
    broken = tmp_path / "Jenkinsfile"
    broken.write_text(jf.JENKINSFILE.read_text().replace("stages {", "stages {{", 1))
    code, report = _lint([broken], "info")
    assert code != 0
    assert any("NglParseError" in f for f in _findings(report, broken, {"error"}))


def _casc_strings(node: Any, path: str = "") -> list[tuple[str, str]]:
    """Every (dotted key, string value) pair in the JCasC tree."""
    if isinstance(node, dict):
        return [pair for key, value in node.items() for pair in _casc_strings(value, f"{path}.{key}")]
    if isinstance(node, list):
        return [pair for i, value in enumerate(node) for pair in _casc_strings(value, f"{path}[{i}]")]
    return [(path, node)] if isinstance(node, str) else []


def plaintext_secrets(tree: Any) -> list[str]:
    """Secret-looking keys whose value is not exactly one `${VAR}` reference (no literal, no default)."""
    return [
        key
        for key, value in _casc_strings(tree)
        if SECRET_KEY.search(key.rsplit(".", 1)[-1])
        and not key.endswith("Id")
        and not ENV_REFERENCE.fullmatch(value)
    ]


def test_casc_has_no_plaintext_secret() -> None:
    tree = _casc()
    assert plaintext_secrets(tree) == []
    # The checker itself catches the mistakes it exists for.
    assert plaintext_secrets({"users": [{"password": "admin"}]}) == [".users[0].password"]
    assert plaintext_secrets({"string": {"secret": "${MLSTACK_WEBHOOK_TOKEN:-changeme}"}}) == [
        ".string.secret"
    ]
    seed = _seed_script()
    assert not re.search(r"\btoken\('", seed), "a literal webhook token in the seed job"


def test_casc_security_realm_and_authorization() -> None:
    jenkins = _casc()["jenkins"]
    local = jenkins["securityRealm"]["local"]
    assert local["allowsSignup"] is False
    (admin,) = local["users"]
    assert admin["password"] == "${JENKINS_ADMIN_PASSWORD}"
    assert jenkins["authorizationStrategy"] == {"loggedInUsersCanDoAnything": {"allowAnonymousRead": False}}
    assert "crumbIssuer" in jenkins
    assert jenkins["numExecutors"] >= 2  # one may wait in the approval input step
    (credentials,) = _casc()["credentials"]["system"]["domainCredentials"]
    (token,) = [c["string"] for c in credentials["credentials"] if "string" in c]
    assert token["id"] == "mlstack-webhook-token" and token["secret"] == "${MLSTACK_WEBHOOK_TOKEN}"
    assert f"tokenCredentialId: '{token['id']}'" in TEXT


def test_casc_seeds_the_pipeline_job_from_the_repository() -> None:
    seed = _seed_script()
    assert re.search(r"pipelineJob\('mlstack'\)", seed)
    assert "url('${MLSTACK_REPO_URL:-file:///workspace/mlstack}')" in seed
    assert "branch('*/${MLSTACK_REPO_BRANCH:-main}')" in seed
    assert "scriptPath('Jenkinsfile')" in seed and "cpsScm" in seed


_DSL_PARAM = re.compile(
    r"(stringParam|booleanParam|choiceParam)\('(\w+)', (\[[^\]]*\]|'[^']*'|true|false), '([^']*)'\)"
)
_DSL_KIND = {"string": "stringParam", "booleanParam": "booleanParam", "choice": "choiceParam"}


def test_seed_job_repeats_the_jenkinsfile_parameters_and_triggers() -> None:
    """The seed job must declare what the Jenkinsfile declares, or a restart silently drops triggers."""
    seed = _seed_script()
    declared = []
    for kind, name, raw, description in _DSL_PARAM.findall(seed):
        if raw.startswith("["):
            choices = tuple(re.findall(r"'([^']*)'", raw))
            declared.append(jf.Parameter("choice", name, choices[0], choices, description))
        else:
            default: str | bool = raw.strip("'") if raw.startswith("'") else raw == "true"
            jenkins_kind = next(k for k, v in _DSL_KIND.items() if v == kind)
            declared.append(jf.Parameter(jenkins_kind, name, default, (), description))
    assert declared == jf.parameters(TEXT)
    # Triggers: same push polling, schedule and webhook settings.
    poll = re.search(r"pollSCM\('([^']+)'\)", TEXT)
    cron = re.search(r"parameterizedCron\('([^']+)'\)", TEXT)
    assert poll and f"scmpoll_spec('{poll.group(1)}')" in seed
    assert cron and f"parameterizedSpecification('{cron.group(1)}')" in seed
    assert "githubPush()" in seed
    generic = re.search(r"GenericTrigger\((.*?)\n\s*\)\n", TEXT, re.S)
    assert generic
    for key, value in re.findall(r"\[key: '(\w+)', value: '([^']+)'", generic.group(1)):
        assert re.search(rf"key\('{key}'\)\s*value\('{re.escape(value)}'\)", seed), key
    for setting in ("tokenCredentialId", "causeString", "regexpFilterText", "regexpFilterExpression"):
        value = re.search(rf"{setting}: '([^']*)'", generic.group(1))
        assert value and f"{setting}('{value.group(1)}')" in seed, setting
    for flag in ("printContributedVariables", "printPostContent", "silentResponse"):
        value = re.search(rf"{flag}: (true|false)", generic.group(1))
        assert value and f"{flag}({value.group(1)})" in seed, flag


def _plugins() -> dict[str, str]:
    lines = [line.strip() for line in (JENKINS_DIR / "plugins.txt").read_text().splitlines()]
    entries = [line for line in lines if line and not line.startswith("#")]
    pins = dict(entry.split(":", 1) for entry in entries)
    assert len(pins) == len(entries), "a plugin is listed twice"
    return pins


def test_plugins_are_pinned_and_cover_what_the_pipeline_uses() -> None:
    pins = _plugins()
    for plugin, version in pins.items():
        assert re.fullmatch(r"[a-z0-9][a-z0-9-]*", plugin), plugin
        assert re.fullmatch(r"[0-9][\w.+-]*", version) and version != "latest", f"{plugin} is not pinned"
    required = {
        "workflow-aggregator", "git", "github", "configuration-as-code", "job-dsl", "generic-webhook-trigger",
        "docker-workflow", "junit", "timestamper", "credentials", "credentials-binding", "plain-credentials",
        "matrix-auth", "parameterized-scheduler",
    }  # fmt: skip
    assert required <= set(pins), required - set(pins)
    # Each pipeline feature used in the Jenkinsfile has its plugin.
    uses = {
        "GenericTrigger(": "generic-webhook-trigger",
        "githubPush()": "github",
        "parameterizedCron(": "parameterized-scheduler",
        "timestamps()": "timestamper",
        "junit ": "junit",
        "checkout scm": "git",
    }
    for usage, plugin in uses.items():
        assert usage in TEXT, usage
        assert plugin in pins, f"{usage} needs the {plugin} plugin"


def _hadolint() -> str:
    venv_bin = Path(sys.executable).parent / "hadolint"
    return str(venv_bin) if venv_bin.exists() else require_binary("hadolint")


def test_dockerfile_passes_hadolint(tmp_path: Path) -> None:
    hadolint = _hadolint()
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    # ...and hadolint does fail on the mistakes it should catch here.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM jenkins/jenkins:lts\nUSER root\nRUN apt-get update && apt-get install -y curl\n")
    assert subprocess.run([hadolint, str(bad)], capture_output=True, timeout=60).returncode != 0


def test_dockerfile_builds_a_self_configuring_jenkins() -> None:
    text = DOCKERFILE.read_text()
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


def test_docs_explain_every_parameter() -> None:
    docs = (REPO / "docs" / "jenkins.md").read_text()
    for parameter in jf.parameters(TEXT):
        assert f"`{parameter.name}`" in docs, parameter.name
    for topic in ("docker compose --profile jenkins up -d", "generic-webhook-trigger/invoke", "docker.sock"):
        assert topic in docs, topic
