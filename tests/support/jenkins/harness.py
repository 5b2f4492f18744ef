"""Drive harness.groovy: the Jenkinsfile and the Job DSL seed script, executed by Groovy 2.4.21.

No Jenkins controller can run here, so harness.groovy stands in for it (what it models and what it
refuses is described at its top). This module writes the harness's JSON request, runs it under the
machine's `java` with Debian's Groovy jars, and reads the answer into typed records.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlstack.config import REPO_ROOT
from tests.support.binaries import require_binary, skip_or_fail

HARNESS = Path(__file__).with_name("harness.groovy")
JENKINSFILE = REPO_ROOT / "Jenkinsfile"
CLI_PATH = ".venv/bin/mlstack"
# Jenkins 2.568.2 bundles Groovy 2.4.21 (jenkinsci/jenkins, tag jenkins-2.568.2, bom/pom.xml groovy.version).
GROOVY_VERSION = "2.4.21"
# Programs the Jenkinsfile's `sh` scripts may call: stand-ins record their argv (any other fails: 127).
PATH_PROGRAMS = ("make", "docker")
WORKSPACE_PROGRAMS = (CLI_PATH,)
JENKINS_URL = "http://localhost:8080/"


def groovy_command() -> list[str]:
    """`java ... groovy.ui.GroovyMain harness.groovy`, with the jars of the installed `groovy`.

    The jars are used directly (not Debian's `groovy` launcher) because the launcher insists on
    JAVA_HOME or /usr/lib/jvm/default-java, which a machine with only a versioned JDK lacks.
    """
    groovy = Path(require_binary("groovy")).resolve()
    java = require_binary("java")
    lib = groovy.parent.parent / "lib"
    jars = sorted(lib.glob("groovy-[0-9]*.jar"))
    if not jars:
        skip_or_fail(f"no groovy jar in {lib} (the `groovy` on PATH is {groovy})")
    return [
        java,
        "-XX:TieredStopAtLevel=1",
        "-XX:+UseSerialGC",
        "-cp",
        f"{lib}/*",
        "groovy.ui.GroovyMain",
        str(HARNESS),
    ]


def run_harness(request: Mapping[str, Any], timeout: float = 900) -> dict[str, Any]:
    """One harness run: the JSON answer, or a test failure with the harness's own error output."""
    command = groovy_command()
    with tempfile.TemporaryDirectory(prefix="mlstack-harness-") as tmp:
        path = Path(tmp) / "request.json"
        path.write_text(json.dumps(request))
        done = subprocess.run(
            [*command, str(path)], capture_output=True, text=True, timeout=timeout, check=False
        )
    if done.returncode != 0:
        raise AssertionError(f"harness.groovy exited {done.returncode}:\n{done.stderr[-6000:]}")
    answer: dict[str, Any] = json.loads(done.stdout)
    assert answer["groovy"] == GROOVY_VERSION, (
        f"Groovy {answer['groovy']} runs the harness, Jenkins bundles {GROOVY_VERSION}"
    )
    return answer


@dataclass(frozen=True)
class Scenario:
    """One build: how it is triggered, how inputs are answered, which stages' commands fail."""

    name: str
    trigger: Mapping[str, Any] = field(default_factory=lambda: {"type": "manual"})
    input: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    failing_stages: tuple[str, ...] = ()
    previous_result: str | None = None
    jenkinsfile: Path | None = None  # another file than the run's (the harness's own tests)

    def request(self) -> dict[str, Any]:
        return {
            "jenkinsfile": str(self.jenkinsfile) if self.jenkinsfile else None,
            "name": self.name,
            "trigger": dict(self.trigger),
            "input": {k: dict(v) for k, v in self.input.items()},
            "failing_stages": list(self.failing_stages),
            "previous_result": self.previous_result,
        }


def manual(name: str, **parameters: str | bool) -> Scenario:
    """ "Build with Parameters" by the admin, with these values (the rest at their defaults)."""
    return Scenario(name, trigger={"type": "manual", "parameters": parameters})


@dataclass(frozen=True)
class ShStep:
    """One `sh` step: where it ran, the script Groovy produced, what /bin/sh made of it."""

    stage: str
    path: str
    section: str  # "steps" or "post <condition>"
    script: str
    argv: tuple[tuple[str, ...], ...]  # every program the script called, fully expanded
    exit: int
    env: Mapping[str, str]
    output: str

    @property
    def commands(self) -> list[str]:
        return [shlex.join(a) for a in self.argv]


@dataclass(frozen=True)
class Build:
    """What the harness reports for one scenario."""

    raw: Mapping[str, Any]

    @property
    def name(self) -> str:
        return str(self.raw["name"])

    @property
    def triggered(self) -> bool:
        return bool(self.raw["triggered"])

    @property
    def reason(self) -> str:
        return str(self.raw.get("reason", ""))

    @property
    def result(self) -> str:
        return str(self.raw["result"])

    @property
    def error(self) -> str | None:
        return self.raw.get("error")

    @property
    def ran(self) -> list[str]:
        return list(self.raw["ran"])

    @property
    def skipped(self) -> list[str]:
        return list(self.raw["skipped"])

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.raw["params"])

    @property
    def causes(self) -> list[dict[str, Any]]:
        return list(self.raw["causes"])

    @property
    def posts(self) -> list[tuple[str, str]]:
        """(scope, condition) of every post block that ran: scope is a stage path or "pipeline"."""
        return [(p["scope"], p["condition"]) for p in self.raw["posts"]]

    @property
    def inputs(self) -> list[dict[str, Any]]:
        return list(self.raw["inputs"])

    @property
    def undefined(self) -> list[str]:
        """`params.X` / `env.X` the build read without anything defining them (null in Jenkins)."""
        return list(self.raw["undefined"])

    @property
    def steps(self) -> list[dict[str, Any]]:
        return list(self.raw["steps"])

    def stage(self, name: str) -> dict[str, Any]:
        (record,) = [s for s in self.raw["stages"] if s["name"] == name]
        return dict(record)

    @property
    def sh_steps(self) -> list[ShStep]:
        return [
            ShStep(
                stage=s["stage"],
                path=s["path"],
                section=s["section"],
                script=s["script"],
                argv=tuple(tuple(a) for a in s["argv"]),
                exit=int(s["exit"]),
                env=dict(s["env"]),
                output=s["output"],
            )
            for s in self.raw["steps"]
            if s["step"] == "sh"
        ]

    @property
    def commands(self) -> list[str]:
        """Every program call of every `sh` step, in order, as a shell-quoted line."""
        return [c for step in self.sh_steps for c in step.commands]

    def cli_stages(self, section: str = "steps") -> list[str]:
        """The `mlstack stage A B ...` names the build ran, in order (the local runner's vocabulary)."""
        names: list[str] = []
        for step in self.sh_steps:
            if step.section != section:
                continue
            for argv in step.argv:
                if argv[:2] == (CLI_PATH, "stage"):
                    names.extend(a for a in argv[2:] if not a.startswith("-"))
        return names

    def summary(self) -> str:
        """A readable account of the build, for assertion messages and the closing note."""
        lines = [f"{self.name}: {self.result}" + (f" ({self.error})" if self.error else "")]
        lines.append("  ran:     " + " > ".join(self.ran))
        lines.append("  skipped: " + ", ".join(self.skipped))
        lines.extend(f"  post {scope}: {condition}" for scope, condition in self.posts)
        lines.extend(f"  [{s.stage}/{s.section}] {c}" for s in self.sh_steps for c in s.commands)
        return "\n".join(lines)


@dataclass(frozen=True)
class JenkinsfileRun:
    """The Jenkinsfile's declarations (parameters, triggers, options, stages) and one build per scenario."""

    groovy: str
    java: str
    definition: Mapping[str, Any]
    builds: Mapping[str, Build]

    @property
    def parameters(self) -> list[dict[str, Any]]:
        return list(self.definition["parameters"])

    @property
    def triggers(self) -> list[dict[str, Any]]:
        return list(self.definition["triggers"])


def run_jenkinsfile(
    scenarios: Sequence[Scenario],
    jenkinsfile: Path = JENKINSFILE,
    credentials: Mapping[str, str] | None = None,
) -> JenkinsfileRun:
    """Execute `jenkinsfile` once per scenario (one JVM for all of them)."""
    names = [s.name for s in scenarios]
    assert len(set(names)) == len(names), f"duplicate scenario names: {names}"
    answer = run_harness(
        {
            "jenkinsfile": str(jenkinsfile),
            "jenkins_url": JENKINS_URL,
            "path_programs": list(PATH_PROGRAMS),
            "workspace_programs": list(WORKSPACE_PROGRAMS),
            "credentials": dict(credentials or {}),
            "scenarios": [s.request() for s in scenarios],
        }
    )
    if "harness_error" in answer:
        raise AssertionError(f"{jenkinsfile}: the harness refused: {answer['harness_error']}")
    builds: dict[str, Build] = {}
    for raw in answer["scenarios"]:
        if "harness_error" in raw:
            raise AssertionError(f"scenario {raw['name']}: the harness refused: {raw['harness_error']}")
        builds[raw["name"]] = Build(raw)
    return JenkinsfileRun(answer["groovy"], answer["java"], answer["definition"], builds)


def run_seed_job(script: str) -> list[dict[str, Any]]:
    """Execute a Job DSL script against the harness's Job DSL contexts: the jobs it defines."""
    answer = run_harness({"seed_script": script})
    if "jobs_error" in answer:
        raise AssertionError(f"Job DSL: {answer['jobs_error']}")
    return list(answer["jobs"])
