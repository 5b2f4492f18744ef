"""Evaluate a Groovy DSL file (Jenkinsfile, Job DSL) with Groovy itself and return its calls as data."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.binaries import require_binary

RECORDER = Path(__file__).with_name("groovy") / "record_dsl.groovy"


@dataclass(frozen=True)
class Call:
    """One DSL call: `name(args...) { children }` (an assignment `NAME = value` has one arg)."""

    name: str
    args: tuple[Any, ...]
    children: tuple[Call, ...] = field(default=())

    def walk(self) -> Iterator[Call]:
        yield self
        for child in self.children:
            yield from child.walk()


def _call(raw: dict[str, Any]) -> Call:
    return Call(raw["name"], tuple(raw["args"]), tuple(_call(c) for c in raw["children"]))


def _java_env() -> dict[str, str]:
    """Debian's groovy launcher wants JAVA_HOME (or /usr/lib/jvm/default-java): derive it from `java`."""
    env = dict(os.environ)
    if not env.get("JAVA_HOME") and not Path("/usr/lib/jvm/default-java/bin/java").exists():
        env["JAVA_HOME"] = str(Path(require_binary("java")).resolve().parents[1])
    return env


def record(path: Path) -> list[Call]:
    """Run `path` through Groovy (Debian's 2.4, the language of Jenkins' CPS) against a recorder."""
    groovy = require_binary("groovy")
    result = subprocess.run(
        [groovy, str(RECORDER), str(path)], capture_output=True, text=True, timeout=300, check=False,
        env=_java_env(),
    )  # fmt: skip
    assert result.returncode == 0, f"groovy could not evaluate {path}:\n{result.stderr[-3000:]}"
    return [_call(c) for c in json.loads(result.stdout.strip().splitlines()[-1])]


def find(calls: list[Call], name: str) -> list[Call]:
    """Every call named `name`, at any depth, in file order."""
    return [c for top in calls for c in top.walk() if c.name == name]
