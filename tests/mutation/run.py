"""`make mutation`: mutmut over the decision modules, a score per module and every survivor named.

Why a staged tree: mutmut 3 names each mutant after its file path and imports the mutated copy from
`mutants/`, so every package must sit where it is imported from. This repository maps `mlstack_api` to
`api/mlstack_api` and `mlstack_exporter` to `exporter/mlstack_exporter` (setuptools `package-dir`); run in
place, the api mutants would be named `api.mlstack_api...` (no test ever "covers" them) and the tests
would import the unmutated package through the editable install. So this driver copies the tree flat
into `build/mutation/` (each package under its import name, plus `tests/`, `pyproject.toml`,
`mlstack.yaml`) and runs `mutmut run` there, fresh every time (a cached verdict would not see a test
added since).

Which tests run: mutmut records, in one stats run over the selected unit tests, which test calls which
function, and runs only those tests against each mutant of that function (stopping at the first
failure). `MODULES` below is the one definition of what is mutated and which tests are selected.

Two mutants that mutmut's operators cannot produce (issue 17 found them by hand) are applied here too
(`HAND_MUTANTS`), and must be killed.

Usage: python -m tests.mutation.run [--module LABEL ...] [--max-children N]
Exit status: 0 when every survivor is a known equivalent mutant (`equivalents.py`) and every hand-made
mutant is killed; 1 otherwise.
"""

from __future__ import annotations

import argparse
import ast
import fnmatch
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
import tomllib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.mutation.equivalents import equivalence

REPO_ROOT = Path(__file__).resolve().parents[2]
STAGE = REPO_ROOT / "build" / "mutation"
LOG = STAGE / "mutmut.log"
# Beside the packages and tests, what the tests read through `mlstack.config.REPO_ROOT`.
STAGED_FILES = ("pyproject.toml", "mlstack.yaml")
PROGRESS_EVERY_S = 30.0


@dataclass(frozen=True)
class DecisionModule:
    """One module whose decisions the mutants probe.

    `functions` scopes the mutants to the decision code (globs over mutmut's mangled names:
    `x_func` for a function, `xǁClassǁmethod` for a method); `tests` are the unit tests that pin it.
    """

    label: str
    path: str  # as imported (the staged tree's layout), e.g. "mlstack_api/validation.py"
    tests: tuple[str, ...]
    functions: tuple[str, ...] = ("*",)

    @property
    def dotted(self) -> str:
        return self.path.removesuffix(".py").replace("/", ".")

    @property
    def globs(self) -> list[str]:
        return [f"{self.dotted}.{function}__mutmut_*" for function in self.functions]

    def owns(self, mutant: str) -> bool:
        return any(fnmatch.fnmatchcase(mutant, glob) for glob in self.globs)


MODULES: tuple[DecisionModule, ...] = (
    DecisionModule("gate", "mlstack/gate.py", ("tests/unit/gate",)),
    # Not the hypothesis properties beside the boundary tests: 150 examples per property take ~30 s
    # per surviving mutant; the boundary tests pin each rule deterministically.
    DecisionModule(
        "schema",
        "mlstack/schema.py",
        (
            "tests/unit/schema/test_schema_boundaries.py",
            "tests/unit/schema/test_schema_records.py",
            "tests/unit/schema/test_feature_types.py",
        ),
    ),
    # The predictor's request validator: the envelope (api), then the column-wise batch check (core).
    # Its OpenAPI rendering (instance_schema, openapi_components) is documentation, checked by
    # schemathesis in the integration tests, not a decision.
    DecisionModule(
        "request validation",
        "mlstack_api/request_validation.py",
        ("tests/unit/api/test_request_validation.py",),
        (
            "xǁRequestErrorǁ*",
            "x_decode_json",
            "x_parse_instances",
            "x__instances_locate",
            "x_model_input",
            "x_model_frame",
            "x_unknown_categories",
            "x_fast_matrix",
        ),
    ),
    DecisionModule(
        "batch validation",
        "mlstack/batch_validation.py",
        ("tests/unit/batch_validation", "tests/unit/api/test_request_validation.py"),
    ),
    DecisionModule("data validation", "mlstack/data_validation.py", ("tests/unit/validation",)),
    # The policy, not the plumbing: the audit log's file handling, the subprocess runner and the
    # worker thread are exercised by tests/unit/ct and the CT scenario, not probed by mutants.
    DecisionModule(
        "ct policy",
        "mlstack/ct.py",
        (
            "tests/unit/ct/test_ct_policy.py",
            "tests/unit/ct/test_policy_boundaries.py",
            "tests/unit/ct/test_controller_records.py",
        ),
        (
            "x_bearer_token_ok",
            "x_evaluate_policy",
            "x_retrain_policy",
            "xǁPipelineRunnerǁoutcome",
            "xǁTriggerControllerǁsubmit",
            "xǁTriggerControllerǁ_coalesce",
            "xǁTriggerControllerǁ_finished",
            "xǁTriggerControllerǁ_next",
            "xǁTriggerControllerǁlast_retrain",
        ),
    ),
    DecisionModule("feedback", "mlstack/feedback.py", ("tests/unit/feedback",)),
    # Which labelled feedback rows are trained on, and how operator decisions override the check;
    # not the store reads (labelled_rows, decisions, audit_entries, quarantined_count).
    DecisionModule(
        "feedback quarantine",
        "mlstack/quarantine.py",
        ("tests/unit/quarantine", "tests/unit/feedback"),
        (
            "xǁDecisionǁ*",
            "xǁFeedbackCheckǁ*",
            "x__shape_problem",
            "x_row_problems",
            "x_check_rows",
            "x_record_check",
            "x_decide",
        ),
    ),
)

# Tests in the selected files that do not belong in a mutation run: they start real subprocesses
# (the pipeline), which do not see the mutant under test and take minutes.
DESELECT = (
    "tests/unit/ct/test_ct_policy.py::test_scheduled_retrain_runs_the_real_pipeline_subprocess_and_audits_it",
    # Hypothesis, 150 examples: ~3 s for each mutant it runs against; the path tests beside it are
    # deterministic and pin the same verdicts.
    "tests/unit/batch_validation/test_batch_validation.py::test_same_verdict_and_same_error_as_row_by_row",
)


@dataclass(frozen=True)
class HandMutant:
    """A mutant mutmut's operators do not generate, applied as a text replacement.

    `path` is the file patched (default: the module's own); the module's tests must kill it.
    """

    label: str  # the DecisionModule whose tests must kill it
    name: str
    old: str
    new: str
    path: str | None = None


FLOAT64_MAX = "float(np.finfo(np.float64).max)"
HAND_MUTANTS: tuple[HandMutant, ...] = (
    HandMutant(
        "gate",
        "floor check moved by the tolerance (floor + tol)",
        "challenger_score < gate.floor - tol",
        "challenger_score < gate.floor + tol",
    ),
    HandMutant(
        "gate",
        "floor check without the tolerance",
        "challenger_score < gate.floor - tol",
        "challenger_score < gate.floor",
    ),
    HandMutant(
        "gate",
        "floor check moved by twice the tolerance",
        "challenger_score < gate.floor - tol",
        "challenger_score < gate.floor - 2 * tol",
    ),
    HandMutant(
        "schema",
        "float32 bound widened to float64 (the constant)",
        "FLOAT32_MAX = float(np.finfo(np.float32).max)",
        f"FLOAT32_MAX = {FLOAT64_MAX}",
    ),
    HandMutant(
        "schema",
        "float32 bound widened to float64 (the row-wise check)",
        "if abs(number) > FLOAT32_MAX:",
        f"if abs(number) > {FLOAT64_MAX}:",
    ),
    HandMutant(
        "request validation",
        "float32 bound widened to float64 (the bulk check /predict runs)",
        "within: np.ndarray = np.abs(values) <= FLOAT32_MAX",
        f"within: np.ndarray = np.abs(values) <= {FLOAT64_MAX}",
        path="mlstack/schema.py",
    ),
)


# --------------------------------------------------------------------------- staging


def package_dirs() -> dict[str, str]:
    """Import name -> directory, from setuptools' `package-dir` (top-level packages only)."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    mapping: dict[str, str] = project["tool"]["setuptools"]["package-dir"]
    return {name: path for name, path in mapping.items() if "." not in name}


def tracked_files(directory: str) -> list[str]:
    """Files of `directory` that git would commit (tracked or new, not ignored)."""
    command = ["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", directory]
    out = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line and (REPO_ROOT / line).is_file()]


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot render {value!r} as TOML")


def mutmut_settings(modules: Sequence[DecisionModule]) -> dict[str, object]:
    """pyproject's [tool.mutmut] plus what `MODULES` decides: the files and the tests."""
    settings: dict[str, object] = dict(
        tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    )
    owned = {"only_mutate", "pytest_add_cli_args_test_selection"} & settings.keys()
    if owned:
        raise SystemExit(f"pyproject [tool.mutmut] must not set {sorted(owned)}: tests/mutation/run.py does")
    settings["only_mutate"] = [m.path for m in modules]
    tests = list(dict.fromkeys(t for m in modules for t in m.tests))
    settings["pytest_add_cli_args_test_selection"] = tests + _deselect_args(tests)
    return settings


def staged_pyproject(settings: dict[str, object]) -> str:
    """The repository's pyproject.toml with its [tool.mutmut] table replaced by `settings`."""
    text = (REPO_ROOT / "pyproject.toml").read_text()
    table = "[tool.mutmut]\n" + "".join(f"{key} = {_toml_value(value)}\n" for key, value in settings.items())
    match = re.search(r"^\[tool\.mutmut\]\n(?:(?!\[).*\n|\n)*", text, flags=re.MULTILINE)
    if match is None:
        raise SystemExit("pyproject.toml has no [tool.mutmut] table")
    return text[: match.start()] + table + "\n" + text[match.end() :]


def stage(modules: Sequence[DecisionModule]) -> None:
    """A fresh flat copy of the tree in build/mutation."""
    shutil.rmtree(STAGE, ignore_errors=True)
    STAGE.mkdir(parents=True)
    for name, directory in package_dirs().items():
        for rel in tracked_files(directory):
            _copy(REPO_ROOT / rel, STAGE / name / Path(rel).relative_to(directory))
    for rel in tracked_files("tests"):
        _copy(REPO_ROOT / rel, STAGE / rel)
    for rel in STAGED_FILES:
        _copy(REPO_ROOT / rel, STAGE / rel)
    (STAGE / "pyproject.toml").write_text(staged_pyproject(mutmut_settings(modules)))
    for module in modules:
        if not (STAGE / module.path).is_file():
            raise SystemExit(
                f"decision module {module.label!r}: {module.path} is not in the tree; update MODULES"
            )
        for test in module.tests:
            if not (STAGE / test).exists():
                raise SystemExit(f"decision module {module.label!r}: {test} does not exist; update MODULES")


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)


# --------------------------------------------------------------------------- running mutmut


def mutmut_binary() -> str:
    found = Path(sys.executable).with_name("mutmut")
    if not found.exists():
        raise SystemExit(f"{found} not found: mutmut is in the dev extra (make venv installs it)")
    return str(found)


def verdicts(modules: Sequence[DecisionModule]) -> dict[str, int | None]:
    """Every in-scope mutant and its exit code so far (None: not checked yet)."""
    found: dict[str, int | None] = {}
    for module in modules:
        meta = STAGE / "mutants" / (module.path + ".meta")
        if not meta.exists():
            continue
        try:
            codes = json.loads(meta.read_text())["exit_code_by_key"]
        except (ValueError, KeyError):
            continue  # being rewritten: read it next time
        found.update({k: v for k, v in codes.items() if module.owns(k)})
    return found


def run_mutmut(modules: Sequence[DecisionModule], max_children: int) -> None:
    """Run mutmut on the in-scope mutants (output in the log), printing progress every 30 s."""
    globs = [g for m in modules for g in m.globs]
    command = [mutmut_binary(), "run", "--max-children", str(max_children), *globs]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    started = next_report = time.monotonic()
    with LOG.open("w") as log:
        proc = subprocess.Popen(command, cwd=STAGE, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            while proc.poll() is None:
                time.sleep(1.0)
                if time.monotonic() < next_report + PROGRESS_EVERY_S:
                    continue
                next_report = time.monotonic()
                codes = verdicts(modules)
                done = sum(v is not None for v in codes.values())
                phase = f"{done}/{len(codes)} mutants checked" if done else "stats and clean run"
                print(f"  {_minutes(time.monotonic() - started)}: {phase}", flush=True)
        except KeyboardInterrupt:
            proc.terminate()
            proc.wait(timeout=30)
            raise
    if proc.returncode != 0:
        print(_tail(LOG), file=sys.stderr)
        raise SystemExit(f"mutmut failed (exit {proc.returncode}); full log: {LOG}")


def _minutes(seconds: float) -> str:
    return f"{int(seconds) // 60}m{int(seconds) % 60:02d}s"


def _tail(path: Path, count: int = 40) -> str:
    """The log's last lines, without the spinner's repaints."""
    lines = [
        line for line in path.read_text(errors="replace").replace("\r", "\n").splitlines() if line.strip()
    ]
    return "\n".join(lines[-count:])


# --------------------------------------------------------------------------- hand-made mutants


def run_hand_mutants(modules: Sequence[DecisionModule]) -> list[tuple[HandMutant, bool]]:
    """Apply each hand-made mutant to the staged source, run its module's tests; True = killed."""
    by_label = {m.label: m for m in modules}
    results = []
    for mutant in HAND_MUTANTS:
        module = by_label.get(mutant.label)
        if module is None:
            continue
        target = mutant.path or module.path
        path = STAGE / target
        original = path.read_text()
        if original.count(mutant.old) != 1:
            raise SystemExit(
                f"hand-made mutant {mutant.name!r} no longer applies to {target}: "
                f"update HAND_MUTANTS to the code ({mutant.old!r} found {original.count(mutant.old)} times)"
            )
        path.write_text(original.replace(mutant.old, mutant.new))
        try:
            command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *module.tests]
            env = {**os.environ, "PYTHONPATH": str(STAGE), "PYTHONDONTWRITEBYTECODE": "1"}
            proc = subprocess.run(
                [*command, *_deselect_args(module.tests)],
                cwd=STAGE,
                capture_output=True,
                text=True,
                check=False,
                env=env,
            )
        finally:
            path.write_text(original)
        if proc.returncode not in (0, 1):
            print(proc.stdout[-4000:], proc.stderr[-4000:], file=sys.stderr)
            raise SystemExit(
                f"pytest could not run for hand-made mutant {mutant.name!r} (exit {proc.returncode})"
            )
        results.append((mutant, proc.returncode == 1))
    return results


def _deselect_args(tests: Iterable[str]) -> list[str]:
    """`--deselect` for each DESELECT test inside one of the selected paths."""
    selected = list(tests)
    chosen = [d for d in DESELECT if any(d.split("::")[0].startswith(path) for path in selected)]
    return [arg for d in chosen for arg in ("--deselect", d)]


# --------------------------------------------------------------------------- the report

STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped"}
TIMEOUT_CODES = {-24, 24, 152, 255, 36}


def status(code: int | None) -> str:
    if code is None:
        return "not checked"
    if code in TIMEOUT_CODES:
        return "timeout"
    return STATUS.get(code, "suspicious")


@dataclass
class Survivor:
    mutant: str
    location: str  # file:line in the repository
    function: str
    before: str
    after: str
    status: str
    equivalent: str | None = None


@dataclass
class ModuleScore:
    module: DecisionModule
    counts: Counter[str] = field(default_factory=Counter)
    survivors: list[Survivor] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def score(self) -> float:
        """Killed (timeouts included, as mutmut counts them) over all mutants, in per cent."""
        return 100.0 * (self.counts["killed"] + self.counts["timeout"]) / self.total if self.total else 100.0


def repo_path(staged: str) -> str:
    """`mlstack_api/validation.py` -> `api/mlstack_api/validation.py`."""
    name, _, rest = staged.partition("/")
    return f"{package_dirs().get(name, name)}/{rest}"


def describe(mutant: str, module: DecisionModule) -> tuple[str, str, str, str]:
    """(file:line, function, original line, mutated line) of one mutant, from mutmut's diff."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    cwd = Path.cwd()
    os.chdir(STAGE)
    try:
        diff = get_diff_for_mutant(mutant, path=module.path).splitlines()
    finally:
        os.chdir(cwd)
    mangled = mutant.rpartition(".")[2].partition("__mutmut_")[0]
    function = mangled.removeprefix("x_") if mangled.startswith("x_") else mangled[2:].replace("ǁ", ".")
    removed = next(
        (i for i, line in enumerate(diff) if line.startswith("-") and not line.startswith("---")), None
    )
    added = next((line[1:] for line in diff if line.startswith("+") and not line.startswith("+++")), "")
    if removed is None:
        return f"{repo_path(module.path)}:?", function, "", added.strip()
    hunk = next(i for i in range(removed, -1, -1) if diff[i].startswith("@@"))
    # The hunk's original side (context and removed lines), located in the file: that is robust
    # against comments above the function, which mutmut's function text may or may not include.
    before_side = [line[1:].strip() for line in diff[hunk + 1 :] if line[:1] in (" ", "-")]
    index = sum(1 for line in diff[hunk + 1 : removed] if line[:1] in (" ", "-"))
    line_no = _locate(STAGE / module.path, function, before_side, index)
    return f"{repo_path(module.path)}:{line_no}", function, diff[removed][1:].strip(), added.strip()


def _locate(path: Path, function: str, block: list[str], index: int) -> int | str:
    """The file line of `block[index]`, where `block` is a run of lines inside `function`."""
    lines = [line.strip() for line in path.read_text().splitlines()]
    name = function.split(".")[-1]
    spans = [
        (min([n.lineno, *(d.lineno for d in n.decorator_list)]), n.end_lineno or n.lineno)
        for n in ast.walk(ast.parse(path.read_text()))
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == name
    ]
    for first, last in spans:
        for start in range(max(first - len(block), 1), last + 1):
            if lines[start - 1 : start - 1 + len(block)] == block:
                return start + index
    return "?"


def collect(modules: Sequence[DecisionModule]) -> list[ModuleScore]:
    codes = verdicts(modules)
    scores = []
    for module in modules:
        score = ModuleScore(module)
        for mutant, code in sorted(codes.items(), key=lambda kv: _natural(kv[0])):
            if not module.owns(mutant):
                continue
            state = status(code)
            score.counts[state] += 1
            if state in ("survived", "no tests", "suspicious", "not checked"):
                where, function, before, after = describe(mutant, module)
                survivor = Survivor(mutant, where, function, before, after, state)
                survivor.equivalent = equivalence(module.path, function, before, after)
                score.survivors.append(survivor)
        scores.append(score)
    return scores


def _natural(key: str) -> tuple[str, int]:
    head, _, number = key.rpartition("__mutmut_")
    return head, int(number) if number.isdigit() else 0


def report(scores: Sequence[ModuleScore], hand: Sequence[tuple[HandMutant, bool]], timing: str) -> bool:
    """Print the per-module table and every survivor; True when nothing is left unexplained."""
    print()
    print(f"mutation score per decision module ({timing}):")
    columns = ("mutants", "killed", "timeout", "survived", "score")
    print(f"  {'module':<20} {'file':<32} " + " ".join(f"{c:>8}" for c in columns))
    for s in scores:
        survived = s.total - s.counts["killed"] - s.counts["timeout"]
        numbers = (s.total, s.counts["killed"], s.counts["timeout"], survived)
        print(
            f"  {s.module.label:<20} {repo_path(s.module.path):<32} "
            + " ".join(f"{n:>8}" for n in numbers)
            + f" {s.score:>7.1f}%"
        )
    ok = True
    survivors = [v for s in scores for v in s.survivors]
    if survivors:
        print()
        print("surviving mutants:")
        for v in survivors:
            verdict = f"equivalent: {v.equivalent}" if v.equivalent else f"UNEXPLAINED ({v.status})"
            ok = ok and v.equivalent is not None
            print(f"  {v.location} [{v.function}] {v.before!r} -> {v.after!r}")
            print(f"      {verdict}  ({v.mutant})")
    if hand:
        print()
        print("hand-made mutants (issue 17):")
        for mutant, killed in hand:
            ok = ok and killed
            print(f"  {mutant.label}: {mutant.name}: {'killed' if killed else 'SURVIVED'}")
    print()
    if ok:
        print("every surviving mutant is a known equivalent one")
    else:
        print("kill each UNEXPLAINED or SURVIVED mutant with a test, or say why it is equivalent")
        print("(tests/mutation/equivalents.py)")
    return ok


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--module", action="append", choices=[m.label for m in MODULES], help="only these")
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 2)
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="summarise the last run again (hand-made mutants not re-run)",
    )
    args = parser.parse_args(argv)
    modules = [m for m in MODULES if not args.module or m.label in args.module]
    hand: list[tuple[HandMutant, bool]] = []
    timing = "last run"
    if not args.report_only:
        started = time.monotonic()
        print(f"mutation: staging a flat copy of the tree in {STAGE.relative_to(REPO_ROOT)}", flush=True)
        stage(modules)
        labels = ", ".join(m.label for m in modules)
        print(f"mutation: mutmut on {labels} (log: {LOG.relative_to(REPO_ROOT)})", flush=True)
        run_mutmut(modules, args.max_children)
        print("mutation: hand-made mutants", flush=True)
        hand = run_hand_mutants(modules)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = children.ru_utime + children.ru_stime
        timing = (
            f"{_minutes(time.monotonic() - started)} wall, {_minutes(cpu)} CPU, {args.max_children} workers"
        )
    ok = report(collect(modules), hand, timing)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
