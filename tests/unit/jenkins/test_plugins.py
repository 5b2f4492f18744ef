"""jenkins/plugins.txt against its evidence table in docs/jenkins.md ("Plugin pins").

Each pin was confirmed in the plugin's own repository: the release tag exists and its pom.xml's
`jenkins.version` (the minimum core) is not newer than the core in jenkins/Dockerfile. The table
records where; this test keeps file and table identical and the minimum cores below the pinned core.
"""

from __future__ import annotations

import re

from mlstack.config import REPO_ROOT
from tests.support.jenkins import casc

PLUGINS = REPO_ROOT / "jenkins" / "plugins.txt"
DOCS = REPO_ROOT / "docs" / "jenkins.md"


def pins() -> dict[str, str]:
    lines = [line.strip() for line in PLUGINS.read_text().splitlines()]
    entries = [line for line in lines if line and not line.startswith("#")]
    found = dict(entry.split(":", 1) for entry in entries)
    assert len(found) == len(entries), "a plugin is listed twice"
    return found


def pin_table() -> dict[str, dict[str, str]]:
    """The rows of the "Plugin pins" table: plugin -> version, minimum core, evidence."""
    section = DOCS.read_text().split("## Plugin pins", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, dict[str, str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`"):
            plugin, version, core, evidence = (c.strip("`") for c in cells)
            rows[plugin] = {"version": version, "core": core, "evidence": evidence}
    return rows


def test_plugins_are_pinned() -> None:
    for plugin, version in pins().items():
        assert re.fullmatch(r"[a-z0-9][a-z0-9-]*", plugin), plugin
        assert re.fullmatch(r"[0-9][\w.+-]*", version) and version != "latest", f"{plugin} is not pinned"


def test_every_pin_has_its_evidence_in_the_docs() -> None:
    table = pin_table()
    assert {p: r["version"] for p, r in table.items()} == pins()
    core = casc.core_version()
    for plugin, row in table.items():
        assert casc.version_tuple(row["core"]) <= casc.version_tuple(core), (
            f"{plugin} needs Jenkins {row['core']}"
        )
        assert re.search(r"jenkinsci/[\w.-]+", row["evidence"]), f"{plugin}: which repository?"
        assert re.search(r"\b[0-9a-f]{12,40}\b", row["evidence"]), f"{plugin}: which commit?"


def test_the_docs_name_the_pinned_core() -> None:
    assert f"jenkins/jenkins:{casc.core_version()}" in DOCS.read_text()
