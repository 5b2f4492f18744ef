"""jenkins/casc.yaml as JCasC reads it: the YAML tree, its `${VAR}` references and their resolution."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from mlstack.config import REPO_ROOT

CASC = REPO_ROOT / "jenkins" / "casc.yaml"
DOCKERFILE = REPO_ROOT / "jenkins" / "Dockerfile"
# JCasC's SecretSourceResolver (configuration-as-code 2116.v98dde145b_dce): commons-text StringSubstitutor,
# `${NAME}` or `${NAME:-default}`, `^${...}` escapes it; an unresolved name becomes "" (with a warning).
_REFERENCE = re.compile(r"(\^?)\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def text() -> str:
    return CASC.read_text()


def tree() -> dict[str, Any]:
    loaded = yaml.safe_load(text())
    assert isinstance(loaded, dict), "casc.yaml is not a mapping"
    return loaded


def references(source: str) -> list[str]:
    """The variable names JCasC will substitute in `source` (escaped `^${...}` excluded), in order."""
    names: list[str] = []
    for escaped, name, _ in _REFERENCE.findall(source):
        if not escaped and name not in names:
            names.append(name)
    return names


@dataclass(frozen=True)
class Resolved:
    text: str
    unresolved: tuple[str, ...]


def resolve(source: str, env: Mapping[str, str]) -> Resolved:
    """Substitute like JCasC: a set variable, else the `:-` default, else "" (reported as unresolved)."""
    unresolved: list[str] = []

    def substitute(match: re.Match[str]) -> str:
        escaped, name, default = match.group(1), match.group(2), match.group(3)
        if escaped:
            return match.group(0)[1:]
        if env.get(name):
            return env[name]
        if default is not None:
            return default
        unresolved.append(name)
        return ""

    return Resolved(_REFERENCE.sub(substitute, source), tuple(unresolved))


def seed_script(env: Mapping[str, str]) -> str:
    """The `jobs:` Job DSL script, after JCasC's variable substitution with `env`."""
    (job,) = tree()["jobs"]
    resolved = resolve(str(job["script"]), env)
    assert not resolved.unresolved, f"seed job: unresolved {resolved.unresolved}"
    return resolved.text


def string_credentials(env: Mapping[str, str]) -> dict[str, str]:
    """id -> secret of the `string` (secret text) credentials JCasC creates with `env`."""
    domains = tree()["credentials"]["system"]["domainCredentials"]
    found: dict[str, str] = {}
    for domain in domains:
        for credential in domain["credentials"]:
            if "string" in credential:
                secret = resolve(str(credential["string"]["secret"]), env)
                assert not secret.unresolved, (
                    f"credential {credential['string']['id']}: unresolved {secret.unresolved}"
                )
                found[credential["string"]["id"]] = secret.text
    return found


def key_paths(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every mapping key path in the tree (list items do not add a path element)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*path, str(key))
            yield from key_paths(value, (*path, str(key)))
    elif isinstance(node, list):
        for item in node:
            yield from key_paths(item, path)


def core_version() -> str:
    """The Jenkins core version the controller image is built on (jenkins/Dockerfile FROM tag)."""
    (base,) = re.findall(r"^FROM\s+jenkins/jenkins:(\S+)", DOCKERFILE.read_text(), re.M)
    match = re.match(r"(\d+(?:\.\d+)+)", base)
    assert match, f"no version in the base image tag {base}"
    return match.group(1)


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))
