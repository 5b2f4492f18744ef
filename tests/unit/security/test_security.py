"""No open doors: no secret in the repository, constant-time token checks on every protected endpoint,
hardened containers. The dependency audit (pip-audit) is in
tests/integration/security/test_dependency_audit.py.

Covered elsewhere and not repeated here (docs/operations.md#security lists every check):
compose refusing to start without each secret (test_compose_lint), loopback-only ports
(test_compose_lint), non-root Dockerfiles (test_compose_lint), Grafana without anonymous access or
default password (test_monitoring_dashboards, test_compose_lint), Jenkins without anonymous read
(test_jenkins), 401s on the predictor's and the trigger's endpoints (test_api, test_trigger_server).
"""

from __future__ import annotations

import ast
import inspect
import math
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from mlstack.config import REPO_ROOT, load_config

# -------------------------------------------------------------------------------- secrets in the repo

STRONG_PATTERNS = {
    "private key": re.compile(r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----"),
    "AWS access key": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})"),
    "Slack token": re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    "credentials in a URL": re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@'\"]+:(?!\$)[^/\s@'\"]{3,}@"),
}
# A quoted literal assigned to a secret-like name: `token = "..."`, `password: '...'`, `SECRET="..."`.
SECRET_ASSIGNMENT = re.compile(
    r"""(?ix)\b(?P<key>[a-z0-9_]*(?:password|passwd|secret|token|api_?key)[a-z0-9_]*)["']?\s*[:=]\s*
    (?P<quote>["'])(?P<value>[^"'\s]{6,})(?P=quote)"""
)
QUOTED = re.compile(r"""["']([A-Za-z0-9+/_=.-]{20,})["']""")
#: Not secrets: placeholders in docs, env-variable names, and the throwaway tokens of the test suite
#: (each visibly fake, used only against processes the tests start on loopback).
ALLOWED_VALUES = {
    "user:pass@",  # docs/config.md, mlstack.yaml: URL shape examples
    "mlstack-webhook-token",  # a Jenkins credential *id*
    "unit-test-admin-token",
    "unit-test-feedback-token",
    "test-feedback-token",
    "feedback-token-of-thirty-two-chars",
    "integration-admin-token",
    "s3cret-token-for-tests-0123456789",
    "s3cret-token",
    "fuzz-token",
    "fuzzing-webhook-token-0123456789",
    "a-token-of-thirty-two-characters",
    "vocabulary-test-token",  # tests/integration/contract: the harness's fake webhook token
    "harness-webhook-token-0123456789",  # tests/integration/jenkins/scenarios.py: the same
    "not-the-token",  # tests/integration/jenkins/scenarios.py: the wrong token, on purpose
    "user:secret@127.0.0.1:1",  # tests/unit/store/test_store.py: URL parsing only, nothing listens there
    ":'mlflow_password'",  # psql variables (mlflow-db/init.sql), filled from the environment
    ":'predictions_password'",
}
#: Whole files whose long random-looking strings are not secrets.
ALLOWED_FILES = {
    "package-lock.json": "npm integrity hashes (sha512 of published tarballs)",
    "requirements.lock": "pinned versions only",
}
#: Keys that name a secret (its variable, file or id) rather than hold it.
NAME_KEYS = ("file", "filename", "path", "env", "id", "name", "url")
FORBIDDEN_NAMES = re.compile(r"(^|/)(\.env|id_rsa|id_ed25519|.*\.pem|.*\.key|.*\.p12|.*\.pfx)$")


def shannon_entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def looks_random(value: str) -> bool:
    """Long, high-entropy, upper and lower case and digits: how generated keys and tokens look.

    Dotted names, `key=value` pairs and paths are names, not secrets.
    """
    if re.search(r"[./]|=(?!=*$)", value):
        return False
    classes = sum(bool(re.search(p, value)) for p in (r"[a-z]", r"[A-Z]", r"[0-9]"))
    return len(value) >= 20 and classes == 3 and shannon_entropy(value) >= 4.0


def find_secrets(path: str, text: str) -> list[str]:
    """Findings `path:line: kind` in one file's text."""
    findings = []
    for number, line in enumerate(text.splitlines(), 1):
        kinds = [kind for kind, pattern in STRONG_PATTERNS.items() if pattern.search(line)]
        for match in SECRET_ASSIGNMENT.finditer(line):
            value, key = match["value"], match["key"].lower()
            if key.endswith(NAME_KEYS) or value.startswith(("$", "/", "{")) or "{" in value:
                continue  # the name of a variable, file or credential id; a reference or template
            if not re.fullmatch(r"[A-Z][A-Z0-9_]*", value):
                kinds.append(f"literal {match['key']}")
        if path not in ALLOWED_FILES:
            kinds += ["high-entropy string" for match in QUOTED.finditer(line) if looks_random(match[1])]
        if kinds and not any(allowed in line for allowed in ALLOWED_VALUES):
            findings += [f"{path}:{number}: {kind}" for kind in kinds]
    return findings


def tracked_files() -> list[str]:
    result = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    return result.stdout.split()


def test_no_secret_in_tracked_files() -> None:
    files = tracked_files()
    assert len(files) > 50
    findings = []
    for name in files:
        assert not FORBIDDEN_NAMES.search(name), f"{name} must never be committed"
        try:
            text = (REPO_ROOT / name).read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue  # binary, or deleted in the working tree
        findings += find_secrets(name, text)
    assert findings == [], "possible secrets (allow-list a fake value in ALLOWED_VALUES):\n" + "\n".join(
        findings
    )


# Planted secrets are assembled at run time, so this file's own text holds none for the scan to find.
PLANTED = [
    "password = " + '"hunter2-correct-horse"',
    "  GF_SECURITY_ADMIN_PASSWORD: " + "'admin123'",
    "MLSTACK_ADMIN_TOKEN=" + '"q9XkLm2Pz7' + 'RtVb4Nw8Hc"',
    "url: postgresql://mlflow:" + "Sup3rS3cret@postgres:5432/mlflow",
    "-----BEGIN OPENSSH " + "PRIVATE KEY-----",
    "key = 'AKIA" + "IOSFODNN7EXAMPLE'",
    'headers = {"X-Api": "ZmFrZS1r' + "ZXktZm9y" + "LXRoZS1z" + "Y2FubmVy" + 'LXRlc3Q9"}',
]


@pytest.mark.parametrize("line", PLANTED)
def test_the_scanner_catches_planted_secrets(line: str) -> None:
    assert find_secrets("planted.txt", line), line


@pytest.mark.parametrize(
    "line",
    [
        "POSTGRES_PASSWORD: ${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is not set}",
        'ADMIN_TOKEN_ENV = "MLSTACK_ADMIN_TOKEN"',
        'token = os.environ.get("MLSTACK_WEBHOOK_TOKEN", "")',
        "MLSTACK__PREDICTION_STORE__URL: postgresql+psycopg2://predictions@postgres:5432/predictions",
        'run_name = "pipeline-0123456789ab"',
    ],
)
def test_the_scanner_passes_references_and_names(line: str) -> None:
    assert find_secrets("clean.txt", line) == []


# -------------------------------------------------------------------------------- token comparison

SOURCE_DIRS = ("mlstack", "api/mlstack_api", "exporter/mlstack_exporter")
SECRET_NAME = re.compile(r"(?i)token|secret|password|credential")


def _names(node: ast.AST) -> list[str]:
    return [
        n.id if isinstance(n, ast.Name) else n.attr
        for n in ast.walk(node)
        if isinstance(n, ast.Name | ast.Attribute)
    ]


def insecure_comparisons(source: str) -> list[int]:
    """Lines where a secret-named value is compared with ==, != or `in` (not constant time)."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Compare):
            continue
        if not any(isinstance(op, ast.Eq | ast.NotEq | ast.In | ast.NotIn) for op in node.ops):
            continue
        operands = [node.left, *node.comparators]
        if any(isinstance(o, ast.Constant) and o.value in ("", None) for o in operands):
            continue  # an emptiness check reveals nothing about the value
        if any(SECRET_NAME.search(name) for operand in operands for name in _names(operand)):
            lines.append(node.lineno)
    return lines


def test_secrets_are_compared_in_constant_time_only() -> None:
    findings = []
    checkers = []
    for directory in SOURCE_DIRS:
        for path in sorted((REPO_ROOT / directory).rglob("*.py")):
            source = path.read_text()
            findings += [f"{path.relative_to(REPO_ROOT)}:{line}" for line in insecure_comparisons(source)]
            if "hmac.compare_digest(" in source:
                checkers.append(str(path.relative_to(REPO_ROOT)))
    assert findings == [], f"compare secrets with hmac.compare_digest, not ==: {findings}"
    # The token-protected HTTP endpoints: predictor /admin/reload and /feedback, CT trigger /alertmanager.
    from mlstack_api import routes

    from mlstack.ct import bearer_token_ok

    token_checkers = {inspect.getsourcefile(routes), inspect.getsourcefile(bearer_token_ok)}
    assert {str(Path(p).relative_to(REPO_ROOT)) for p in token_checkers if p} <= set(checkers), checkers
    # The checker catches what it exists for.
    assert insecure_comparisons("ok = given == state.admin_token") == [1]
    assert insecure_comparisons("ok = header.split()[1] != expected_secret") == [1]
    assert insecure_comparisons("if not token or token == '':\n    pass") == []


TOKEN = "a-token-of-thirty-two-characters"
FEEDBACK_TOKEN = "feedback-token-of-thirty-two-chars"


@pytest.fixture
def api_client() -> TestClient:
    """The predictor without a model or MLflow (the lifespan is not entered): auth comes first."""
    from mlstack_api.main import create_app

    return TestClient(create_app(load_config(environ={}), admin_token=TOKEN, feedback_token=FEEDBACK_TOKEN))


def test_every_admin_and_feedback_route_of_the_predictor_requires_its_token(api_client: TestClient) -> None:
    from mlstack_api.routes import router

    app: Any = api_client.app
    routes = [route for route in router.routes if isinstance(route, APIRoute)]

    def bearers(dependant: Any) -> list[Any]:  # HTTPBearer anywhere in the route's dependency tree
        found = [d.call for d in dependant.dependencies if d.call.__class__.__name__ == "HTTPBearer"]
        return found + [b for d in dependant.dependencies for b in bearers(d)]

    protected = {route.path for route in routes if bearers(route.dependant)}
    admin = {route.path for route in routes if "/admin" in route.path}
    assert admin == {"/admin/reload"}
    # Feedback writes labels into the next training set: it has a token of its own (issue 18).
    tokens = {"/admin/reload": TOKEN, "/feedback": FEEDBACK_TOKEN}
    assert protected == set(tokens)
    documented = {
        path
        for path, methods in app.openapi()["paths"].items()
        if any("401" in op.get("responses", {}) for op in methods.values())
    }
    assert documented == protected
    for path, token in tokens.items():
        other = FEEDBACK_TOKEN if token == TOKEN else TOKEN
        wrong = [
            {},
            {"Authorization": "Bearer"},
            {"Authorization": "Bearer "},
            {"Authorization": f"Bearer {token[:-1]}"},  # a prefix
            {"Authorization": f"Bearer {token}x"},  # longer
            {"Authorization": f"Bearer {token.upper()}"},
            {"Authorization": f"Basic {token}"},
            {"Authorization": token},
            {"Authorization": f"Bearer {other}"},  # the other endpoint's token
        ]
        for headers in wrong:
            response = api_client.post(path, headers=headers)
            assert response.status_code in (401, 403), (headers, response.status_code, response.text)
            assert token not in response.text
        # The right token passes auth (admin: 503, no model watcher to reload; feedback: 422, no body).
        passed = api_client.post(path, headers={"Authorization": f"Bearer {token}"}).status_code
        assert passed == {"/admin/reload": 503, "/feedback": 422}[path]


def test_the_predictor_refuses_admin_calls_when_no_token_is_configured() -> None:
    from mlstack_api.main import create_app

    client = TestClient(create_app(load_config(environ={}), admin_token=None))
    for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer None"}):
        assert client.post("/admin/reload", headers=headers).status_code == 403


def test_trigger_token_check_refuses_near_misses() -> None:
    from mlstack.ct import bearer_token_ok

    assert bearer_token_ok(f"Bearer {TOKEN}", TOKEN)
    for header in (None, "", "Bearer", f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN}x", f"Basic {TOKEN}", TOKEN):
        assert not bearer_token_ok(header, TOKEN), header
    assert not bearer_token_ok("Bearer ", "")  # an unset token never matches an empty one


# -------------------------------------------------------------------------------- containers

COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yaml").read_text())
#: Services whose root filesystem stays writable, and why (docs/operations.md#security).
WRITABLE_ROOT = {
    "grafana": "writes plugins and provisioning state under /usr/share/grafana and /var/lib/grafana",
    "jenkins": "installs plugins and tools into its home at run time; profile `jenkins` only",
}
#: Bind mounts of host paths allowed beyond the read-only config directories.
HOST_MOUNTS = {("jenkins", "/var/run/docker.sock")}


def test_containers_are_read_only_unprivileged_and_on_the_internal_network() -> None:
    services: dict[str, dict[str, Any]] = COMPOSE["services"]
    for name, service in services.items():
        if name == "base":
            assert service.get("network_mode") == "none"  # build-only image, never started
            continue
        if name not in WRITABLE_ROOT:
            assert service.get("read_only") is True, f"{name}: read_only: true (or document why not)"
        for forbidden in ("privileged", "cap_add", "pid", "ipc", "devices"):
            assert forbidden not in service, f"{name}: {forbidden}"
        assert service.get("network_mode") is None, f"{name}: network_mode {service.get('network_mode')}"
        assert service.get("networks") == ["mlstack"], f"{name}: {service.get('networks')}"
        assert str(service.get("user", "")) not in {"0", "root", "0:0"}, name
        for volume in service.get("volumes", []):
            source, _, rest = str(volume).partition(":")
            if source.startswith(("/", ".")):
                read_only = rest.endswith(":ro")
                assert read_only or (name, source) in HOST_MOUNTS, f"{name}: host mount {volume} must be :ro"
    # The database and MLflow are published on loopback only, and only as documented optional ports.
    for name in ("postgres", "mlflow"):
        assert all(str(p).startswith("127.0.0.1:") for p in services[name]["ports"]), name
    assert set(COMPOSE["networks"]) == {"mlstack"}
    assert COMPOSE["networks"]["mlstack"] in ({}, None) or "external" not in COMPOSE["networks"]["mlstack"]


def test_writable_root_exceptions_are_documented() -> None:
    operations = (REPO_ROOT / "docs/operations.md").read_text()
    for name in WRITABLE_ROOT:
        assert re.search(rf"`{name}`.*read-only|read-only.*`{name}`", operations), name


# -------------------------------------------------------------------------------- static analysis


def test_ruff_bandit_rules_are_selected_and_clean() -> None:
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    select = re.search(r"^select = \[(.*)\]", pyproject, flags=re.MULTILINE)
    assert select and '"S"' in select[1]
    ignored = re.search(r"^ignore = \[(.*)\]", pyproject, flags=re.MULTILINE)
    operations = (REPO_ROOT / "docs/operations.md").read_text()
    for rule in re.findall(r'"(S\d+)"', ignored[1] if ignored else ""):
        assert rule in operations, f"ignored bandit rule {rule} must be justified in docs/operations.md"
    ruff = Path(sys.executable).parent / "ruff"
    ignores = re.findall(r'"(S\d+)"', ignored[1] if ignored else "")
    result = subprocess.run(
        [str(ruff), "check", "--select", "S", "--ignore", ",".join(ignores) or "S000", *SOURCE_DIRS],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
