"""jenkins/casc.yaml against what the pinned Jenkins core accepts, and against leaking secrets.

Pure Python on the YAML tree. Executing the seed job and resolving the variables with compose's
environment are integration tests (tests/integration/jenkins/).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from tests.support.jenkins import casc


@dataclass(frozen=True)
class RemovedAttribute:
    """A JCasC attribute that a core release removed: JCasC refuses the whole file at startup."""

    path: tuple[str, ...]  # key path in casc.yaml
    removed_in: str  # first core release without it
    upstream: str  # the change that removed it
    evidence: str


REMOVED = [
    RemovedAttribute(
        path=("jenkins", "crumbIssuer", "standard", "excludeClientIPFromCrumb"),
        removed_in="2.543",
        upstream="jenkinsci/jenkins#25918 (Remove IP address from DefaultCrumbIssuer)",
        evidence="DefaultCrumbIssuer's @DataBoundConstructor takes no argument from tag jenkins-2.543 on; "
        "commit 07d2ff18a4 is first contained in jenkins-2.543",
    ),
]

# Keys whose values are secrets: each must be a bare `${VAR}` reference, never a literal or a default.
SECRET_KEY = re.compile(r"password|secret|token|credential|apikey|api_key|privatekey", re.I)
ENV_REFERENCE = re.compile(r"\$\{[A-Z][A-Z0-9_]*\}")


def removed_attributes(tree: dict[str, Any], core: str) -> list[str]:
    """The attributes of `tree` that the core version `core` no longer has."""
    paths = set(casc.key_paths(tree))
    return [
        f"{'.'.join(r.path)}: removed in Jenkins {r.removed_in} ({r.upstream})"
        for r in REMOVED
        if r.path in paths and casc.version_tuple(core) >= casc.version_tuple(r.removed_in)
    ]


def test_casc_uses_no_attribute_the_pinned_core_removed() -> None:
    assert removed_attributes(casc.tree(), casc.core_version()) == []


def test_the_removed_attribute_check_catches_the_old_crumb_issuer() -> None:
    """The configuration that stopped Jenkins at boot is caught; an older core still accepted it."""
    old = yaml.safe_load("jenkins:\n  crumbIssuer:\n    standard:\n      excludeClientIPFromCrumb: false\n")
    (finding,) = removed_attributes(old, casc.core_version())
    assert "excludeClientIPFromCrumb" in finding and "#25918" in finding
    assert removed_attributes(old, "2.541.3") == []


def test_crumb_issuer_is_the_attribute_less_default() -> None:
    assert casc.tree()["jenkins"]["crumbIssuer"] == "standard"


def _strings(node: Any, path: str = "") -> list[tuple[str, str]]:
    """Every (dotted key, string value) pair in the JCasC tree."""
    if isinstance(node, dict):
        return [pair for key, value in node.items() for pair in _strings(value, f"{path}.{key}")]
    if isinstance(node, list):
        return [pair for i, value in enumerate(node) for pair in _strings(value, f"{path}[{i}]")]
    return [(path, node)] if isinstance(node, str) else []


def plaintext_secrets(tree: Any) -> list[str]:
    """Secret-looking keys whose value is not exactly one `${VAR}` reference (no literal, no default)."""
    return [
        key
        for key, value in _strings(tree)
        if SECRET_KEY.search(key.rsplit(".", 1)[-1])
        and not key.endswith("Id")
        and not ENV_REFERENCE.fullmatch(value)
    ]


def test_casc_has_no_plaintext_secret() -> None:
    assert plaintext_secrets(casc.tree()) == []
    # The checker itself catches the mistakes it exists for.
    assert plaintext_secrets({"users": [{"password": "admin"}]}) == [".users[0].password"]
    assert plaintext_secrets({"string": {"secret": "${MLSTACK_WEBHOOK_TOKEN:-changeme}"}}) == [
        ".string.secret"
    ]
    (job,) = casc.tree()["jobs"]
    assert not re.search(r"\btoken\('", job["script"]), "a literal webhook token in the seed job"


def test_security_realm_and_authorization() -> None:
    jenkins = casc.tree()["jenkins"]
    local = jenkins["securityRealm"]["local"]
    assert local["allowsSignup"] is False
    (admin,) = local["users"]
    assert admin["password"] == "${JENKINS_ADMIN_PASSWORD}"
    assert jenkins["authorizationStrategy"] == {"loggedInUsersCanDoAnything": {"allowAnonymousRead": False}}
    assert jenkins["numExecutors"] >= 2  # one may wait in the approval input step
    assert casc.string_credentials({"MLSTACK_WEBHOOK_TOKEN": "t"}) == {"mlstack-webhook-token": "t"}


def test_jcasc_resolution_follows_the_plugin() -> None:
    """`${VAR}`, `${VAR:-default}`, `^${VAR}` escaped, unresolved becomes empty: as SecretSourceResolver."""
    resolved = casc.resolve("a=${A} b=${B:-dflt} c=^${C} d=${D}", {"A": "1"})
    assert resolved.text == "a=1 b=dflt c=${C} d=" and resolved.unresolved == ("D",)
    assert casc.references("${A} ${B:-x} ^${C} ${A}") == ["A", "B"]
