"""Print the project's runtime requirements (core + the given extras) from pyproject.toml."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path


def runtime_requirements(pyproject: Path, extras: list[str]) -> list[str]:
    """Core dependencies plus those of `extras`; versions come from the lock via pip -c."""
    project = tomllib.loads(pyproject.read_text())["project"]
    requirements = list(project["dependencies"])
    optional = project.get("optional-dependencies", {})
    for extra in extras:
        if extra not in optional:
            raise SystemExit(f"unknown extra {extra!r}; known: {sorted(optional)}")
        requirements.extend(optional[extra])
    return requirements


if __name__ == "__main__":
    print("\n".join(runtime_requirements(Path(sys.argv[1]), sys.argv[2:])))
